#!/usr/bin/env bash
# deps.sh — installs llmmeter's Debian build and test dependencies when
# they are missing. Safe to run again; does nothing when all are present.
#
#   build:  gcc make libcurl4-openssl-dev libssl-dev libcjson-dev, node-llhttp (the
#           llhttp sources src/http/ compiles in), and zlib1g-dev,
#           libbrotli-dev, libzstd-dev (headers only for the library: it
#           dlopens them; the unit tests link them to compress),
#           libhiredis-dev (the Redis backend dlopens libhiredis0.14)
#   tests:  curl (CLI client), python3 + python3-pycurl, php-cli + php-curl,
#           perl WWW::Curl (a second RTLD_LOCAL host), bc,
#           clang + libclang-rt-14-dev (libFuzzer, sanitizers), valgrind,
#           chromium (renders report --html), prometheus (promtool checks
#           serve's /metrics), tmux (drives watch), groff-base + man-db
#           (render the man pages)
#   lint:   clang-format (14, as .clang-format expects), cppcheck
#   tls tests (tests/tls/, tests/integration/test_tls*.sh): real clients
#           over OpenSSL — python3-requests, -httpx, -aiohttp, -brotli,
#           -zstandard; ruby (net/http); openssl (the test CA); and, in
#           .deps/ (gitignored, made once, then only checked):
#     .deps/venv          /usr/bin/python3's venv with the providers' SDKs
#                         from PyPI, pinned (PY_SDKS below)
#     .deps/node18        Debian's nodejs 18 + libnode108 (dynamically
#                         linked to libssl.so.3), unpacked with dpkg -x so
#                         the installed /usr/bin/node (static OpenSSL,
#                         which no preload can see) stays as it is; it
#                         loads node-undici, node-acorn and
#                         node-cjs-module-lexer from /usr/share/nodejs,
#                         so those are installed as packages. Run it with
#                         tests/tls/node18.
#     .deps/node_modules  the npm SDKs for node 18, pinned (NPM_SDKS)
set -eu
cd "$(dirname "$0")/.."
pkgs="gcc make libc6-dev libcurl4-openssl-dev libssl-dev libcjson-dev node-llhttp
      zlib1g-dev libbrotli-dev libzstd-dev curl ca-certificates
      python3 python3-pycurl php-cli php-curl libwww-curl-perl libcurl3-gnutls
      clang libclang-rt-14-dev valgrind bc clang-format cppcheck
      chromium prometheus tmux groff-base man-db
      openssl python3-venv python3-requests python3-httpx python3-aiohttp
      python3-brotli python3-zstandard ruby
      node-undici node-acorn node-cjs-module-lexer libc-ares2
      libhiredis-dev redis-server redis-tools"
NODE18_VERSION=18.20.4+dfsg-1~deb12u3
PY_SDKS="openai==3.51.0 anthropic==2.10.0"
NPM_SDKS="openai@6.49.0 @anthropic-ai/sdk@1.16.0" # the newest for node 18: openai 7 wants node >= 22
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
updated=0
if [ -n "$missing" ]; then
  echo "deps.sh: installing:$missing"
  $SUDO apt-get update -qq
  updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# --- .deps/: what no Debian package installs where the tests want it --------
mkdir -p .deps
# node 18 beside the installed node: the packages' files, not the packages
if [ "$(cat .deps/node18/.version 2>/dev/null)" != "$NODE18_VERSION" ]; then
  echo "deps.sh: unpacking Debian's nodejs $NODE18_VERSION into .deps/node18"
  [ "$updated" = 1 ] || $SUDO apt-get update -qq
  updated=1
  rm -rf .deps/node18 .deps/debs
  mkdir -p .deps/debs .deps/node18
  chmod 0777 .deps/debs # apt-get download fetches as the _apt user
  (cd .deps/debs && apt-get download -qq "nodejs=$NODE18_VERSION" "libnode108=$NODE18_VERSION")
  for d in .deps/debs/*.deb; do dpkg -x "$d" .deps/node18; done
  rm -rf .deps/debs
  echo "$NODE18_VERSION" >.deps/node18/.version
fi
# the Python SDKs, in a venv of Debian's python3 (its ssl module is the one
# linked to the system's libssl.so.3)
if [ "$(cat .deps/venv/.sdks 2>/dev/null)" != "$PY_SDKS" ]; then
  echo "deps.sh: making .deps/venv with $PY_SDKS"
  rm -rf .deps/venv
  /usr/bin/python3 -m venv .deps/venv
  .deps/venv/bin/pip install -q --disable-pip-version-check $PY_SDKS
  echo "$PY_SDKS" >.deps/venv/.sdks
fi
# the npm SDKs, for node 18 (npm itself runs on the installed node)
if ! command -v npm >/dev/null; then
  echo "deps.sh: no npm here: the node 18 SDK tests will say they are skipped"
elif [ "$(cat .deps/node_modules/.sdks 2>/dev/null)" != "$NPM_SDKS" ]; then
  echo "deps.sh: installing $NPM_SDKS into .deps/node_modules"
  rm -rf .deps/node_modules .deps/package.json .deps/package-lock.json
  (cd .deps && echo '{"name":"llmmeter-test-deps","private":true}' >package.json &&
    npm install -s --no-audit --no-fund --save-exact $NPM_SDKS >/dev/null)
  echo "$NPM_SDKS" >.deps/node_modules/.sdks
fi
echo "deps.sh: all dependencies present"
