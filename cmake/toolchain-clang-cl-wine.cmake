# MSVC mode without Windows: clang-cl (the MSVC driver of clang, target
# x86_64-pc-windows-msvc) over Wine's MSVC-compatible CRT and Windows
# headers, linked by lld-link against Wine's import libraries; programs
# run under Wine.  The SDK directory comes from scripts/msvc-wine-sdk
# (environment MPROC_MSVC_WINE_SDK; the environment, not a cache entry,
# so that CMake's try_compile projects see it too).  Used by
# scripts/test's msvc leg:
#   scripts/msvc-wine-sdk build/msvc-wine-sdk
#   MPROC_MSVC_WINE_SDK=$PWD/build/msvc-wine-sdk cmake -S . -B build/x \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-clang-cl-wine.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

if(DEFINED ENV{MPROC_LLVM_BIN})
  set(mproc_llvm "$ENV{MPROC_LLVM_BIN}")
else()
  set(mproc_llvm /usr/lib/llvm-14/bin)
endif()
set(CMAKE_C_COMPILER ${mproc_llvm}/clang-cl)
set(CMAKE_CXX_COMPILER ${mproc_llvm}/clang-cl)
set(CMAKE_LINKER ${mproc_llvm}/lld-link)
set(CMAKE_AR ${mproc_llvm}/llvm-lib)
set(CMAKE_RC_COMPILER ${mproc_llvm}/llvm-rc)
set(CMAKE_MT ${mproc_llvm}/llvm-mt)

if(NOT DEFINED ENV{MPROC_MSVC_WINE_SDK})
  message(FATAL_ERROR "MPROC_MSVC_WINE_SDK: run scripts/msvc-wine-sdk DIR "
                      "and point it at DIR")
endif()
set(mproc_sdk "$ENV{MPROC_MSVC_WINE_SDK}")
set(mproc_wine_inc /usr/include/wine/wine)

set(mproc_cflags "--target=x86_64-pc-windows-msvc /imsvc ${mproc_wine_inc}/msvcrt /imsvc ${mproc_wine_inc}/windows")
set(CMAKE_C_FLAGS_INIT "${mproc_cflags}")
set(CMAKE_CXX_FLAGS_INIT "${mproc_cflags}")
# The CRT: ucrtbase and vcruntime140 (Wine's DLLs) and the static pieces
# of mproc_crtsupport.lib (entry points that run the image's
# initializers, TLS, /GS, atexit); no default libraries (libcmt,
# oldnames: not in Wine).  mproc_crtsupport.lib first: Wine's
# ucrtbase.lib has a mainCRTStartup of its own, which runs no
# initializers.
set(mproc_link "/libpath:${mproc_sdk}/lib /manifest:no /nodefaultlib mproc_crtsupport.lib ucrtbase.lib vcruntime140.lib")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${mproc_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${mproc_link}")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "${mproc_link}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
if(EXISTS /usr/lib/wine/wine64)
  set(CMAKE_CROSSCOMPILING_EMULATOR /usr/lib/wine/wine64)
endif()
