# Cross-compile for 32-bit Windows with MinGW-w64 (i686): scripts/test's
# m32 leg, which builds and links everything but cannot run it here (no
# 32-bit Wine; see README, "What is tested where").
set(MINGW_PREFIX i686-w64-mingw32)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-mingw-w64.cmake)
