/* mproc/version.h - the library's version. */
#ifndef MPROC_VERSION_H
#define MPROC_VERSION_H

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0
#define MP_VERSION_STRING "0.1.0"

/* MP_VERSION_HEX is 0xMMmmpp, for compile-time comparisons. */
#define MP_VERSION_HEX \
  ((MP_VERSION_MAJOR << 16) | (MP_VERSION_MINOR << 8) | MP_VERSION_PATCH)

#endif /* MPROC_VERSION_H */
