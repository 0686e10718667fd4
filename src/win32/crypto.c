/*
 * crypto.c - HMAC-SHA256 for the Win32 backend, with BCrypt (the OS's
 * cryptography API; Wine implements it too).
 */
#include "internal.h"

#include <bcrypt.h>
#include <limits.h>

#if !defined(BCRYPT_SUCCESS) /* not in every SDK's bcrypt.h (Wine's) */
#  define BCRYPT_SUCCESS(status) (((NTSTATUS)(status)) >= 0)
#endif

int mpi_hmac_sha256(const void *key, size_t key_n, const void *msg,
                    size_t msg_n, unsigned char out[MPI_SHA256_SIZE]) {
  if (key_n > ULONG_MAX || msg_n > ULONG_MAX)
    return mp__error(MP_EINVAL, "HMAC input too long");
  BCRYPT_ALG_HANDLE alg = NULL;
  BCRYPT_HASH_HANDLE hash = NULL;
  static UCHAR none;
  NTSTATUS st = BCryptOpenAlgorithmProvider(&alg, BCRYPT_SHA256_ALGORITHM,
                                            NULL, BCRYPT_ALG_HANDLE_HMAC_FLAG);
  if (BCRYPT_SUCCESS(st))
    st = BCryptCreateHash(alg, &hash, NULL, 0,
                          key_n ? (PUCHAR)key : &none, (ULONG)key_n, 0);
  if (BCRYPT_SUCCESS(st) && msg_n > 0)
    st = BCryptHashData(hash, (PUCHAR)msg, (ULONG)msg_n, 0);
  if (BCRYPT_SUCCESS(st))
    st = BCryptFinishHash(hash, out, MPI_SHA256_SIZE, 0);
  if (hash != NULL)
    BCryptDestroyHash(hash);
  if (alg != NULL)
    BCryptCloseAlgorithmProvider(alg, 0);
  if (!BCRYPT_SUCCESS(st))
    return mp__error(MP_EOS, "HMAC-SHA256 failed (BCrypt status 0x%08lx)",
                     (unsigned long)st);
  return 0;
}
