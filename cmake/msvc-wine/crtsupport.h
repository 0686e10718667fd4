/*
 * crtsupport.h - what crtsupport.c and crtmain.c share (the MSVC-mode
 * leg's stand-in for Microsoft's static C runtime; see crtsupport.c).
 */
#ifndef MPROC_CRTSUPPORT_H
#define MPROC_CRTSUPPORT_H

typedef void(__cdecl *mproc__pvfv)(void);
typedef int(__cdecl *mproc__pifv)(void);

/* ucrtbase's: run each non-null function of [first, last). */
__declspec(dllimport) void __cdecl _initterm(mproc__pvfv *first,
                                             mproc__pvfv *last);
__declspec(dllimport) int __cdecl _initterm_e(mproc__pifv *first,
                                              mproc__pifv *last);

/* The image's C and C++ initializers, in the order MSVC's CRT runs them:
 * 0, or -1 when a C initializer failed. */
int mproc__run_initializers(void);

#endif
