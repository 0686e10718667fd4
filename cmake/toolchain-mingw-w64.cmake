# Cross-compile for 64-bit Windows with MinGW-w64; run the results (tests,
# examples) under Wine.  cmake/toolchain-mingw-w64-i686.cmake sets
# MINGW_PREFIX first, for 32-bit Windows.
set(CMAKE_SYSTEM_NAME Windows)
if(NOT MINGW_PREFIX)
  set(MINGW_PREFIX x86_64-w64-mingw32)
endif()
if(MINGW_PREFIX MATCHES "^i686")
  set(CMAKE_SYSTEM_PROCESSOR x86)
else()
  set(CMAKE_SYSTEM_PROCESSOR x86_64)
endif()
set(CMAKE_C_COMPILER ${MINGW_PREFIX}-gcc)
set(CMAKE_CXX_COMPILER ${MINGW_PREFIX}-g++) # used only by C++ projects
set(CMAKE_RC_COMPILER ${MINGW_PREFIX}-windres)
# Cross-built dependencies given as CMAKE_PREFIX_PATH (e.g. the Criterion
# that scripts/criterion-cross mingw makes) are roots to search as well.
set(CMAKE_FIND_ROOT_PATH /usr/${MINGW_PREFIX} ${CMAKE_PREFIX_PATH})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Static C runtime parts so the .exe files need no MinGW DLLs under Wine.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libgcc")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc")
# wine64 runs 64-bit programs only (32-bit ones need Wine's i386 half).
if(EXISTS /usr/lib/wine/wine64 AND CMAKE_SYSTEM_PROCESSOR STREQUAL "x86_64")
  set(CMAKE_CROSSCOMPILING_EMULATOR /usr/lib/wine/wine64)
endif()
