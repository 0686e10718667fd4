#!/usr/bin/env bash
# A build that knows only pkg-config: compile and link consumer.c with
# the flags mproc.pc gives.  Usage: build.sh <install-prefix> <out-dir>
# [static|shared].  static: the prefix holds libmproc.a, linked with its
# private libraries (pkg-config --static); shared: libmproc.so, found at
# run time through an rpath to the prefix's lib directory.
set -euo pipefail
prefix=$1 out=$2 mode=${3:-shared}
here=$(cd "$(dirname "$0")" && pwd)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
mkdir -p "$out"
cc=${CC:-cc}
if [ "$mode" = static ]; then
  # shellcheck disable=SC2046
  "$cc" -o "$out/consumer" "$here/../consumer.c" \
    $(pkg-config --cflags --static --libs mproc)
else
  # shellcheck disable=SC2046
  "$cc" -o "$out/consumer" "$here/../consumer.c" \
    $(pkg-config --cflags --libs mproc) \
    -Wl,-rpath,"$(pkg-config --variable=libdir mproc)"
fi
echo "built $out/consumer ($mode) with pkg-config $(pkg-config --modversion mproc)"
