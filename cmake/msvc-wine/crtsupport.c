/*
 * crtsupport.c - the few pieces of MSVC's static C runtime that an image
 * needs beyond the CRT DLLs, for the MSVC-mode leg (scripts/test msvc):
 * clang-cl over Wine's MSVC-compatible headers, linked by lld-link
 * against Wine's import libraries, which have ucrtbase.dll and
 * vcruntime140.dll but not Microsoft's static libcmt/vcruntime objects.
 * Built into mproc_crtsupport.lib by scripts/msvc-wine-sdk (with
 * crtmain.c, a program's entry point) and linked into every program and
 * DLL of that leg; never part of mproc itself.
 */
/* The CRT's functions declared without dllimport here: atexit, defined
 * below, would otherwise be taken for a definition of an imported
 * function, which MSVC and clang-cl turn into an export of every DLL
 * linking this library (and a duplicate atexit in programs using two of
 * them). */
#define _ACRTIMP
#include <windows.h>
#include <stdlib.h>

#include "crtsupport.h"

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

/* The marker of a program that uses floating point (the compiler
 * references it; the CRT defines it). */
int _fltused = 0x9875;

/* /GS: the stack cookie and its check. */
UINT_PTR __security_cookie = 0x00002B992DDFA232ull;
void __security_check_cookie(UINT_PTR cookie) {
  if (cookie != __security_cookie)
    abort();
}

/* atexit lives in MSVC's static CRT (per program or DLL); ucrtbase's
 * _crt_atexit is what the static one of a program calls.  A DLL's
 * functions run at process exit here, before DLL_PROCESS_DETACH: mproc
 * and its tests unload no DLL before then. */
__declspec(dllimport) int __cdecl _crt_atexit(void(__cdecl *fn)(void));
int __cdecl atexit(void(__cdecl *fn)(void)) { return _crt_atexit(fn); }

/* The image's initializers: C (.CRT$XI*, may fail) and C++ or
 * constructor-like (.CRT$XC*, e.g. BoxFort's), between these markers;
 * the linker sorts the sections by the name after '$'. */
#pragma section(".CRT$XIA", read)
#pragma section(".CRT$XIZ", read)
#pragma section(".CRT$XCA", read)
#pragma section(".CRT$XCZ", read)
__declspec(allocate(".CRT$XIA")) mproc__pifv __xi_a[] = {0};
__declspec(allocate(".CRT$XIZ")) mproc__pifv __xi_z[] = {0};
__declspec(allocate(".CRT$XCA")) mproc__pvfv __xc_a[] = {0};
__declspec(allocate(".CRT$XCZ")) mproc__pvfv __xc_z[] = {0};

int mproc__run_initializers(void) {
  if (_initterm_e(__xi_a, __xi_z) != 0)
    return -1;
  _initterm(__xc_a, __xc_z);
  return 0;
}

/* A DLL's entry point: its own initializers when it is loaded (mproc
 * has no DllMain). */
BOOL WINAPI _DllMainCRTStartup(HINSTANCE dll, DWORD reason, LPVOID reserved) {
  (void)dll;
  (void)reserved;
  if (reason == DLL_PROCESS_ATTACH)
    return mproc__run_initializers() == 0;
  return TRUE;
}
