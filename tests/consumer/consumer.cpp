// consumer.cpp - mproc used from C++: the header compiles as C++ (C++11
// and later, with -Wall -Wextra -Werror -pedantic), and a process runs a
// function (a captureless lambda, converted to the C function pointer
// mproc takes) under the default start method and under "spawn" (which
// re-runs this program up to MP_MAIN_GUARD).
//
// Prints "consumer ok: C++<standard> ..." and exits 0 when all is well.
#include <cstdio>
#include <cstring>
#include <string>

#include <mproc.h>

namespace {

int run_with(const std::string &method, int arg) {
  // The exit code the parent checks: the argument plus two.
  mp_target_fn child = [](const mp_args *args) -> int {
    return static_cast<int>(mp_args_int(args, 0)) + 2;
  };
  mp_context *ctx = nullptr;
  mp_process *p = nullptr;
  mp_args *args = nullptr;
  int code = -1;
  if (mp_get_context(method.c_str(), &ctx) != 0 ||
      mp_args_pack(&args, "i", arg) != 0 ||
      mp_process_new(&p, child, args) != 0 ||
      mp_process_set_context(p, ctx) != 0 || mp_process_start(p) != 0 ||
      mp_process_join(p, 60.0) != 0 || mp_process_exitcode(p, &code) != 0) {
    std::fprintf(stderr, "consumer: %s: %s\n", method.c_str(),
                 mp_last_error_message());
    return 1;
  }
  mp_process_free(p);
  mp_args_free(args);
  if (code != arg + 2) {
    std::fprintf(stderr, "consumer: %s: exit code %d, expected %d\n",
                 method.c_str(), code, arg + 2);
    return 1;
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (std::strcmp(mp_version(), MP_VERSION_STRING) != 0) {
    std::fprintf(stderr, "consumer: header %s, library %s\n",
                 MP_VERSION_STRING, mp_version());
    return 1;
  }
  if (run_with(mp_get_start_method(), 40) != 0 || run_with("spawn", 5) != 0)
    return 1;
  std::printf("consumer ok: C++%ld, mproc %s, %s and spawn\n",
              static_cast<long>(__cplusplus), mp_version(),
              mp_get_start_method());
  return 0;
}
