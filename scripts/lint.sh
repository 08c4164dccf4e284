#!/usr/bin/env bash
# lint.sh — the style gate behind `make lint`: clang-format, cppcheck and
# checksrc over the project's C sources, one `file:line: reason` line per
# finding, exit 1 if any check found something.
#
#   scripts/lint.sh                  all three checks
#   scripts/lint.sh cppcheck         only the named checks (format, cppcheck,
#                                    checksrc; any of them, in any order)
#   LINT_FORMAT=0 scripts/lint.sh    skip the format check (until the tree
#                                    has had its one reformatting commit)
#   CLANG_FORMAT=clang-format-14 CPPCHECK=... to pick other binaries
#
# What each check covers:
#   format    src/, include/, tests/ C files against .clang-format; the
#             generated src/price/price_table.c and provider_host_table.c
#             are left out (fix the generator, not the output). A file that differs is reported
#             at its first differing line with the number of lines that
#             `clang-format -i FILE` would change.
#   cppcheck  src/ and include/, each layer with the include paths the
#             Makefile gives it (INC_<layer>), so that cppcheck resolves
#             the project's headers as the compiler does (the build, not
#             cppcheck, is what rejects a layering break). See CPPCHECK_*
#             below for the checks and the reason for every suppression.
#   checksrc  src/, include/, tests/ C files: banned calls and the header
#             comment rule (scripts/checksrc.py says exactly what).
#
# Needs clang-format and cppcheck (scripts/deps.sh installs them) and
# python3. A missing tool is a failure, never a silent skip.
set -u
cd "$(dirname "$0")/.." || exit 2

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
CPPCHECK=${CPPCHECK:-cppcheck}
LINT_FORMAT=${LINT_FORMAT:-1}
GENERATED="src/price/price_table.c src/price/provider_host_table.c"
LAYERS="base parse price budget http meter hook cli"
LAYERS="$LAYERS resolve" # the leak guard (src/resolve/)
LAYERS="$LAYERS tls"     # the OpenSSL transport (src/tls/)

# --- cppcheck policy --------------------------------------------------------
# warning, portability and performance in full; style too, less the ids
# below. Each suppression says why it is noise for this code base.
CPPCHECK_ENABLE="warning,style,portability,performance"
CPPCHECK_SUPPRESS=(
  # Locals are declared where they read best (often at the top of a block
  # that uses them on several paths); narrowing scopes is churn, not a bug.
  --suppress=variableScope
  # Handles are opaque (CURL *, CURLM *, struct lm_budget *) and callback
  # signatures are fixed by libcurl: `const` there would say nothing.
  --suppress=constParameter
  # cppcheck 2.10's value flow misreads loop-carried bounds: on this tree
  # three of its five "always true/false" claims were wrong, and the other
  # two are deliberate defensive bounds checks.
  --suppress=knownConditionTrueFalse
  # glibc deprecates readdir_r; readdir on a DIR * that one thread owns is
  # thread-safe there.
  --suppress=readdirCalled
  # System headers are not ours to check (and are not all installed on
  # every machine that lints).
  --suppress=missingIncludeSystem
)
# The generated price and host tables are data files (the price table has
# 4,500 lines): they get the checks that find real defects (errors,
# warnings, portability), not style.
CPPCHECK_ENABLE_GENERATED="warning,portability"

failed=""
note() { printf '%s\n' "$*" >&2; }

# C files under the given folders: tracked and new (not ignored) ones when
# this is a git work tree, else whatever is on disk.
c_files() {
  local d dirs=()
  for d in "$@"; do [ -d "$d" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -eq 0 ] && return 0
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -co --exclude-standard -- "${dirs[@]}" |
      grep -E '\.[ch]$' | while read -r f; do [ -f "$f" ] && echo "$f"; done
  else
    find "${dirs[@]}" -type f -name '*.[ch]' | sort
  fi
}

is_generated() {
  local g
  for g in $GENERATED; do [ "$1" = "$g" ] && return 0; done
  return 1
}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    note "lint: $1 not found (scripts/deps.sh installs it)"
    return 1
  fi
}

# --- format -----------------------------------------------------------------
check_format() {
  if [ "$LINT_FORMAT" = 0 ]; then
    note "lint: format check skipped (LINT_FORMAT=0)"
    return 0
  fi
  need "$CLANG_FORMAT" || return 1
  local ver
  ver=$("$CLANG_FORMAT" --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
  [ "$ver" = 14 ] || note "lint: .clang-format is tuned for clang-format 14;" \
    "this is $ver, whose output may differ"
  local f out n m first bad=0 files=0 lines=0 tmp
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' RETURN
  while read -r f; do
    is_generated "$f" && continue
    files=$((files + 1))
    if ! "$CLANG_FORMAT" --style=file "$f" >"$tmp"; then
      note "lint: $CLANG_FORMAT failed on $f"
      bad=$((bad + 1))
      continue
    fi
    out=$(diff -U0 "$f" "$tmp" | tail -n +3)
    [ -z "$out" ] && continue
    n=$(printf '%s\n' "$out" | grep -c '^-' || true)
    m=$(printf '%s\n' "$out" | grep -c '^+' || true)
    first=$(printf '%s\n' "$out" | awk '/^@@/ { sub(/^-/, "", $2);
      split($2, a, ","); print a[1] + (a[2] == "0"); exit }')
    printf '%s:%s: not clang-formatted (clang-format -i would rewrite' \
      "$f" "$first"
    printf ' %s line(s) as %s)\n' "$n" "$m"
    bad=$((bad + 1))
    lines=$((lines + n))
  done < <(c_files src include tests)
  if [ "$bad" -gt 0 ]; then
    note "lint: format: $bad of $files files, $lines lines would change"
    return 1
  fi
}

# --- cppcheck ---------------------------------------------------------------
# The include paths of a layer, as the Makefile defines them (INC_<layer>;
# tests/mk/lint.mk prints them).
layer_includes() {
  MAKEFLAGS='' make -s --no-print-directory lint-inc-"$1"
}

# Architecture macros as the compiler defines them, so that the code paths
# that are built are the ones checked (interpose.c has no generic fallback),
# and <link.h>'s ElfW(), which cppcheck cannot see without system headers.
arch_defines() {
  ${CC:-cc} -dM -E - </dev/null 2>/dev/null | awk '
    $2 ~ /^__(x86_64|aarch64|SSE2|linux|LP64)__$/ { printf "-D%s=%s\n", $2, $3 }
    $2 == "__LP64__" { lp64 = 1 }
    END { printf "-DElfW(type)=Elf%d_##type\n", lp64 ? 64 : 32 }'
}

check_cppcheck() {
  need "$CPPCHECK" || return 1
  local common=(
    -q --std=c11 --language=c --platform=unix64 --library=posix --library=gnu
    --inline-suppr --error-exitcode=1 -j "$(nproc 2>/dev/null || echo 2)"
    --template='{file}:{line}: cppcheck {severity} [{id}]: {message}'
    -D_GNU_SOURCE
  )
  local defs=() inc=() files=() gen=() lib=() rc=0 layer f
  mapfile -t defs < <(arch_defines)
  common+=("${defs[@]}" "${CPPCHECK_SUPPRESS[@]}")
  for layer in $LAYERS; do
    [ -d "src/$layer" ] || continue
    read -ra inc <<<"$(layer_includes "$layer")"
    if [ ${#inc[@]} -eq 0 ]; then
      note "lint: no include paths for layer $layer (INC_$layer in Makefile)"
      rc=1
      continue
    fi
    files=()
    gen=()
    while read -r f; do
      case "$f" in *.c) ;; *) continue ;; esac
      if is_generated "$f"; then gen+=("$f"); else files+=("$f"); fi
    done < <(c_files "src/$layer")
    lib=()
    [ "$layer" = hook ] && lib=(--library=libcurl)
    if [ ${#files[@]} -gt 0 ]; then
      "$CPPCHECK" "${common[@]}" "${lib[@]}" --enable="$CPPCHECK_ENABLE" \
        "${inc[@]}" "${files[@]}" || rc=1
    fi
    if [ ${#gen[@]} -gt 0 ]; then
      "$CPPCHECK" "${common[@]}" --enable="$CPPCHECK_ENABLE_GENERATED" \
        "${inc[@]}" "${gen[@]}" || rc=1
    fi
  done
  # include/ (the public API): its headers are checked where src/ includes
  # them; any .c there is checked with the meter layer's view.
  files=()
  while read -r f; do
    case "$f" in *.c) files+=("$f") ;; esac
  done < <(c_files include)
  if [ ${#files[@]} -gt 0 ]; then
    read -ra inc <<<"$(layer_includes meter)"
    "$CPPCHECK" "${common[@]}" --enable="$CPPCHECK_ENABLE" \
      "${inc[@]}" "${files[@]}" || rc=1
  fi
  return $rc
}

# --- checksrc ---------------------------------------------------------------
check_checksrc() {
  need python3 || return 1
  local files=()
  mapfile -t files < <(c_files src include tests)
  [ ${#files[@]} -eq 0 ] && return 0
  python3 scripts/checksrc.py "${files[@]}"
}

# --- main -------------------------------------------------------------------
checks=("$@")
[ ${#checks[@]} -eq 0 ] && checks=(format cppcheck checksrc)
for c in "${checks[@]}"; do
  case "$c" in
  format | cppcheck | checksrc)
    note "lint: $c"
    "check_$c" || failed="$failed $c"
    ;;
  *)
    note "usage: scripts/lint.sh [format|cppcheck|checksrc]..."
    exit 2
    ;;
  esac
done
if [ -n "$failed" ]; then
  note "lint: FAILED:$failed"
  exit 1
fi
note "lint: clean"
