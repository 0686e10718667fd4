/*
 * no_entropy.c - a program whose random source is refused (a seccomp
 * filter makes getrandom fail with EPERM, as some sandboxes do) before
 * mproc first looks at it.  The default authkey must then not exist: a
 * manager started, served or connected to without a key of its own fails
 * with MP_EAUTH and says why, never falls back to a fixed key (it used
 * to be 32 zero bytes).  Linux only; exits 0 when all of that holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include "mproc.h"

static int failures;

static void expect(int ok, const char *what) {
  printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok)
    failures++;
}

/* getrandom fails with EPERM from now on, in this process and its
 * children. */
static int refuse_getrandom(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & 0xffff)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("seccomp");
    return -1;
  }
  unsigned char b[4];
  return getrandom(b, sizeof b, 0) < 0 && errno == EPERM ? 0 : -1;
}

/* rc is MP_EAUTH and the message names the random source. */
static int refused(int rc) {
  return rc == MP_EAUTH &&
         strstr(mp_last_error_message(), "random source") != NULL;
}

int main(int argc, char **argv) {
  if (refuse_getrandom() != 0) {
    printf("FAILED: could not install the seccomp filter\n");
    return 1;
  }
  MP_MAIN_GUARD(argc, argv);
  unsigned char key[64];
  expect(mp_process_authkey(mp_current_process(), key, sizeof key) == 0,
         "the main process has no authkey (length 0), not a fixed one");

  mp_manager *m = NULL;
  int rc = mp_manager_start(&m, NULL);
  printf("  mp_manager_start: %s: %s\n", mp_err_name(rc),
         mp_last_error_message());
  expect(refused(rc) && m == NULL, "mp_manager_start without a key: MP_EAUTH");

  mp_manager_server *s = NULL;
  rc = mp_manager_server_new(&s, NULL);
  expect(refused(rc) && s == NULL,
         "mp_manager_server_new without a key: MP_EAUTH");

  rc = mp_manager_connect(&m, "127.0.0.1:1", NULL, 0, 1.0);
  expect(refused(rc) && m == NULL,
         "mp_manager_connect without a key: MP_EAUTH");

  /* With a key of the program's own, the key is no longer what fails;
   * the handshake's challenges still need the random source, so a
   * manager cannot start here, and says so. */
  static const char mine[] = "a key of our own";
  expect(mp_process_set_authkey(mp_current_process(), mine,
                                sizeof mine - 1) == 0,
         "mp_process_set_authkey");
  rc = mp_manager_start(&m, NULL);
  printf("  mp_manager_start with a key: %s: %s\n", mp_err_name(rc),
         rc ? mp_last_error_message() : "");
  expect(rc == 0 || (rc != MP_EAUTH &&
                     strstr(mp_last_error_message(), "getrandom") != NULL),
         "mp_manager_start with a key set: the random source is named");
  mp_manager_free(m);
  printf("%s\n", failures ? "no_entropy: FAILED" : "no_entropy: passed");
  return failures != 0;
}
