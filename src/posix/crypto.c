/*
 * crypto.c - HMAC-SHA256 for the POSIX backend: CommonCrypto on macOS
 * (part of the OS), OpenSSL's libcrypto elsewhere.
 */
#include "internal.h"

#include <limits.h>

#if defined(__APPLE__)
#include <CommonCrypto/CommonHMAC.h>
#else
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif

int mpi_hmac_sha256(const void *key, size_t key_n, const void *msg,
                    size_t msg_n, unsigned char out[MPI_SHA256_SIZE]) {
#if defined(__APPLE__)
  CCHmac(kCCHmacAlgSHA256, key, key_n, msg, msg_n, out);
  return 0;
#else
  unsigned int len = 0;
  if (key_n > INT_MAX)
    return mp__error(MP_EINVAL, "HMAC key of %zu bytes is too long", key_n);
  /* HMAC() with a NULL key pointer means "no key" to some versions. */
  static const unsigned char none;
  if (HMAC(EVP_sha256(), key_n ? key : &none, (int)key_n, msg, msg_n, out,
           &len) == NULL ||
      len != MPI_SHA256_SIZE)
    return mp__error(MP_EOS, "HMAC-SHA256 failed (OpenSSL)");
  return 0;
#endif
}
