# test_man.sh — the man pages: `make install PREFIX=...` installs
# llmmeter(1) and libllmmeter(3), both render with `man -l` and groff
# without a warning, and they are in step with the program: every flag and
# command of `llmmeter --help` is in llmmeter(1) (and in README.md), every
# LLMMETER_ variable the code reads and every exported function of
# llmmeter.h is in libllmmeter(3).
. tests/integration/lib.sh
if [ "${SAN:-0}" = 1 ]; then
  echo "skipped under SAN=1: make install installs the ordinary build"
  exit 0
fi
P=$T/prefix
make -s install PREFIX="$P" >"$T/install.out" 2>&1
expect_eq man_make_install_exit0 "$?" 0
M1=$P/share/man/man1/llmmeter.1 M3=$P/share/man/man3/libllmmeter.3
check man_installed_llmmeter_1 test -f "$M1"
check man_installed_libllmmeter_3 test -f "$M3"
render() { # render PAGE: the page as text, one long line per paragraph
  LC_ALL=C.UTF-8 MANWIDTH=250 man -l "$1" 2>/dev/null | col -b
}
for page in "$M1" "$M3"; do
  n=$(basename "$page")
  groff -man -Tutf8 -ww -z "$page" >"$T/$n.groff" 2>&1
  expect_eq "man_${n}_groff_no_warnings" "$(cat "$T/$n.groff")" ""
  LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>"$T/$n.man" >"$T/$n.txt"
  expect_eq "man_${n}_man_l_no_warnings" "$(cat "$T/$n.man")" ""
  check "man_${n}_renders_text" grep -q "^NAME" "$T/$n.txt"
done
expect_eq man_found_by_manpath "$(MANPATH=$P/share/man man -w llmmeter 2>/dev/null)" "$M1"

render "$M1" >"$T/1.txt"
render "$M3" >"$T/3.txt"
# missing WORDS... FILE: the words that do not appear in FILE as words.
missing() {
  local f=${*: -1} w out=""
  for w in "${@:1:$#-1}"; do
    grep -qF -- "$w" "$f" || out="$out $w"
  done
  echo "${out# }"
}
{ "$LM" --help; "$LM" serve --help; } >"$T/help.txt"
flags=$(grep -oE -- '--[a-z][a-z0-9-]*' "$T/help.txt" | sort -u)
cmds=$(sed -n '/^Commands:/,/^$/p' "$T/help.txt" | awk '/^  [a-z]/ {print $1}' | sort -u)
check man_help_has_flags test "$(echo "$flags" | wc -l)" -gt 30
expect_eq man_1_has_every_flag "$(missing $flags "$T/1.txt")" ""
expect_eq man_1_has_every_command "$(missing $cmds "$T/1.txt")" ""
expect_eq readme_has_every_flag "$(missing $flags README.md)" ""

# Variables: what the code reads (config.c; the CLI's own), what --help
# and README's configuration table name.
vars=$( { grep -ohE '"LLMMETER_[A-Z0-9_]+"' src/meter/*.c src/cli/*.c | tr -d '"'
          grep -oE 'LLMMETER_[A-Z0-9_]+' "$T/help.txt"
          sed -n '/^## Configuration/,/^## /p' README.md | grep -oE '^\| `LLMMETER_[A-Z0-9_]+' | tr -d '|` '
        } | sort -u)
check man_found_variables test "$(echo "$vars" | wc -l)" -ge 20
expect_eq man_3_has_every_variable "$(missing $vars "$T/3.txt")" ""
expect_eq man_1_has_every_help_variable "$(missing $(grep -oE 'LLMMETER_[A-Z0-9_]+' "$T/help.txt" | sort -u) "$T/1.txt")" ""
funcs=$(grep -A2 '^LLMMETER_API' include/llmmeter.h | grep -oE 'llmmeter_[a-z_]+\(' | tr -d '(' | sort -u)
check man_found_functions test "$(echo "$funcs" | wc -l)" -ge 10
expect_eq man_3_has_every_function "$(missing $funcs "$T/3.txt")" ""
codes=$(grep -oE '^  LLMMETER_[A-Z]+ =' include/llmmeter.h | awk '{print $1}')
expect_eq man_3_has_every_result_code "$(missing $codes "$T/3.txt")" ""
