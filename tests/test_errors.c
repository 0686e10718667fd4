/*
 * test_errors.c - error codes, their texts and names, the last error.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "mproc.h"
#include "support.h"

TS_SUITE(errors);

Test(errors, every_code_has_text_and_name) {
  for (int code = -1; code > MP__ERR_MIN; code--) {
    cr_expect_str_neq(mp_strerror(code), "unknown error", "code %d", code);
    cr_expect_eq(strncmp(mp_err_name(code), "MP_E", 4), 0, "code %d", code);
  }
  cr_expect_str_eq(mp_strerror(MP_ETIMEDOUT), "timed out");
  cr_expect_str_eq(mp_err_name(MP_EOWNERDEAD), "MP_EOWNERDEAD");
  cr_expect_str_eq(mp_err_name(0), "MP_OK");
  cr_expect_str_eq(mp_strerror(12345), "unknown error");
  cr_expect_str_eq(mp_err_name(-999), "MP_UNKNOWN");
}

Test(errors, last_error_message) {
  cr_expect_eq(mp_set_error(MP_EVALUE, "bad value %d", 3), MP_EVALUE);
  cr_expect_str_eq(mp_last_error_message(), "bad value 3");
  char big[2000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mp_set_error(MP_EINVAL, "%s", big);
  cr_expect_lt(strlen(mp_last_error_message()), sizeof big,
               "long messages are truncated, not overflowed");
}

Test(errors, version) {
  cr_expect_str_eq(mp_version(), MP_VERSION_STRING);
  cr_expect_eq(MP_VERSION_HEX, 0x000100);
}
