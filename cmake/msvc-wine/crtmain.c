/*
 * crtmain.c - a program's entry point for the MSVC-mode leg (see
 * crtsupport.c): what Microsoft's static CRT does before main (the
 * command line and environment of ucrtbase, the image's initializers,
 * among them BoxFort's .CRT$XCU constructor) and exit with main's value.
 * An object of its own in mproc_crtsupport.lib, so that a DLL, which has
 * no main, never pulls it in.
 */
#define _ACRTIMP
#include <corecrt_startup.h>
#include <stdlib.h>

#include "crtsupport.h"

int __cdecl main(int argc, char **argv, char **envp);

int __cdecl mainCRTStartup(void) {
  _configure_narrow_argv(_crt_argv_unexpanded_arguments);
  _initialize_narrow_environment();
  if (mproc__run_initializers() != 0)
    exit(255);
  exit(main(__argc, __argv, _get_initial_narrow_environment()));
}
