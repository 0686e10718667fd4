/*
 * address.c - parsing listener addresses, for both backends.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int mp__split_host_port(const char *address, char *host, size_t cap,
                        unsigned *port) {
  if (address == NULL || host == NULL || cap == 0 || port == NULL)
    return mp__error(MP_EINVAL, "address: NULL argument");
  const char *colon, *h = address;
  size_t hn;
  if (address[0] == '[') { /* [v6]:port */
    const char *close = strchr(address, ']');
    if (close == NULL || close[1] != ':')
      return mp__error(MP_EINVAL, "address \"%s\": expected [host]:port",
                       address);
    h = address + 1;
    hn = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(address, ':');
    if (colon == NULL)
      return mp__error(MP_EINVAL, "address \"%s\": expected host:port",
                       address);
    hn = (size_t)(colon - address);
    if (memchr(address, ':', hn) != NULL)
      return mp__error(MP_EINVAL, "address \"%s\": an IPv6 host goes in "
                                  "brackets, [host]:port", address);
  }
  if (hn >= cap)
    return mp__error(MP_EINVAL, "address \"%s\": host name too long",
                     address);
  const char *digits = colon + 1;
  size_t nd = strlen(digits);
  if (nd == 0 || nd > 5 || strspn(digits, "0123456789") != nd)
    return mp__error(MP_EINVAL, "address \"%s\": bad port", address);
  unsigned long v = strtoul(digits, NULL, 10);
  if (v > 65535)
    return mp__error(MP_EINVAL, "address \"%s\": port above 65535",
                     address);
  memcpy(host, h, hn);
  host[hn] = '\0';
  *port = (unsigned)v;
  return 0;
}
