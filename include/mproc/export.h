/*
 * mproc/export.h - the MP_API export macro.
 *
 * The installed copy of mproc/config.h records whether the library was
 * built shared, so consumers never have to define anything themselves.
 * MP_BUILDING is defined only while the library itself is compiled.
 */
#ifndef MPROC_EXPORT_H
#define MPROC_EXPORT_H

#include "mproc/config.h"

#if defined(_WIN32) || defined(__CYGWIN__)
#  if MP_SHARED_LIBRARY
#    if defined(MP_BUILDING)
#      define MP_API __declspec(dllexport)
#    else
#      define MP_API __declspec(dllimport)
#    endif
#  else
#    define MP_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define MP_API __attribute__((visibility("default")))
#else
#  define MP_API
#endif

/* printf-style format checking where the compiler has it. */
#if defined(__MINGW32__)
/* MinGW checks "printf" against msvcrt's dialect; the library formats
 * with MinGW's C99 printf (see CMakeLists.txt), so check against that. */
#  define MP_PRINTF(fmt, first) \
    __attribute__((format(gnu_printf, fmt, first)))
#elif defined(__GNUC__) || defined(__clang__)
#  define MP_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#  define MP_PRINTF(fmt, first)
#endif

#endif /* MPROC_EXPORT_H */
