#!/usr/bin/env bash
# deps.sh — installs llmmeter's Debian build and test dependencies when
# they are missing. Safe to run again; does nothing when all are present.
#
#   build:  gcc make libcurl4-openssl-dev libcjson-dev, node-llhttp (the
#           llhttp sources src/http/ compiles in), and zlib1g-dev,
#           libbrotli-dev, libzstd-dev (headers only for the library: it
#           dlopens them; the unit tests link them to compress)
#   tests:  curl (CLI client), python3 + python3-pycurl, php-cli + php-curl,
#           perl WWW::Curl (a second RTLD_LOCAL host), bc,
#           clang + libclang-rt-14-dev (libFuzzer, sanitizers), valgrind,
#           chromium (renders report --html), prometheus (promtool checks
#           serve's /metrics), tmux (drives watch), groff-base + man-db
#           (render the man pages)
#   lint:   clang-format (14, as .clang-format expects), cppcheck
set -eu
pkgs="gcc make libc6-dev libcurl4-openssl-dev libssl-dev libcjson-dev node-llhttp
      zlib1g-dev libbrotli-dev libzstd-dev curl ca-certificates
      python3 python3-pycurl php-cli php-curl libwww-curl-perl libcurl3-gnutls
      clang libclang-rt-14-dev valgrind bc clang-format cppcheck
      chromium prometheus tmux groff-base man-db"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps.sh: installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
echo "deps.sh: all dependencies present"
