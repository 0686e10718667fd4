// header_only.cpp - <mproc.h> as C++ where no C++ standard library is at
// hand (the MSVC-mode leg: clang-cl over Wine's C headers has no STL):
// the header alone, with warnings as errors, linked and run.
#include <mproc.h>

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  const char *v = mp_version();
  return v != nullptr && v[0] != '\0' ? 0 : 1;
}
