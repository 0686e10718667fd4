/*
 * crtsupport.c - the few pieces of MSVC's static C runtime that an image
 * needs beyond the CRT DLLs, for the MSVC-mode leg (scripts/test msvc):
 * clang-cl over Wine's MSVC-compatible headers, linked by lld-link
 * against Wine's import libraries, which have ucrtbase.dll and
 * vcruntime140.dll but not Microsoft's static libcmt/vcruntime objects.
 * Built into mproc_crtsupport.lib by scripts/msvc-wine-sdk and linked
 * into every program and DLL of that leg; never part of mproc itself.
 */
#include <windows.h>
#include <stdlib.h>

/* Thread-local storage: the loader reads _tls_used (the TLS directory)
 * and gives each thread a copy of .tls between _tls_start and _tls_end. */
ULONG _tls_index = 0;
#pragma section(".tls", read, write)
#pragma section(".tls$ZZZ", read, write)
__declspec(allocate(".tls")) char _tls_start = 0;
__declspec(allocate(".tls$ZZZ")) char _tls_end = 0;
#pragma section(".CRT$XLA", read)
#pragma section(".CRT$XLZ", read)
__declspec(allocate(".CRT$XLA")) PIMAGE_TLS_CALLBACK __xl_a = 0;
__declspec(allocate(".CRT$XLZ")) PIMAGE_TLS_CALLBACK __xl_z = 0;
#pragma section(".rdata$T", read)
__declspec(allocate(".rdata$T")) const IMAGE_TLS_DIRECTORY64 _tls_used = {
    (ULONGLONG)&_tls_start, (ULONGLONG)&_tls_end, (ULONGLONG)&_tls_index,
    (ULONGLONG)(&__xl_a + 1), 0, 0};

/* /GS: the stack cookie and its check. */
UINT_PTR __security_cookie = 0x00002B992DDFA232ull;
void __security_check_cookie(UINT_PTR cookie) {
  if (cookie != __security_cookie)
    abort();
}

/* atexit lives in MSVC's static CRT; Wine's msvcrt headers declare it
 * imported.  ucrtbase's _crt_atexit is what the static one calls. */
__declspec(dllimport) int __cdecl _crt_atexit(void(__cdecl *fn)(void));
int __cdecl atexit(void(__cdecl *fn)(void)) { return _crt_atexit(fn); }

/* A DLL's entry point: mproc has no DllMain and C needs no constructors. */
BOOL WINAPI _DllMainCRTStartup(HINSTANCE dll, DWORD reason, LPVOID reserved) {
  (void)dll;
  (void)reason;
  (void)reserved;
  return TRUE;
}
