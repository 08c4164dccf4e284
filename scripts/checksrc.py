#!/usr/bin/env python3
"""checksrc.py — the house rules that neither the compiler nor cppcheck sees.

A small cousin of curl's scripts/checksrc.pl, run by scripts/lint.sh
(`make lint`). It reads C files and prints one `file:line: reason` line per
finding; it exits 1 when there is any, 2 on a usage error, 0 otherwise.

Rules:

  banned call  A call of strcpy, strcat, strtok, sprintf, vsprintf or gets.
               Each has a bounded or reentrant replacement that says what it
               means (memcpy with a known length, snprintf, strtok_r, fgets).
               Only calls count: the name followed by `(`, not as a member
               (`x.gets(`, `p->gets(`) and not inside a longer identifier
               (`snprintf`, `strtok_r`, `my_strcpy`). Comments, string and
               character literals are blanked before the scan, so a mention
               in prose or in a message is never a finding.

  header       Every file opens with its header comment: the first line
               starts with `/* NAME — ` (NAME is the file's own base name,
               then a space, an em dash, a space) and a title follows on
               that line. The first line may instead be an
               SPDX-License-Identifier comment, with the header on line 2.

Usage: checksrc.py FILE...
"""
import os
import re
import sys

BANNED = {
    "strcpy": "use memcpy with a known length (or snprintf)",
    "strcat": "use memcpy or snprintf with a known length",
    "strtok": "use strtok_r",
    "sprintf": "use snprintf",
    "vsprintf": "use vsnprintf",
    "gets": "use fgets",
}

# The name as a whole identifier, not after `.` or `->`, then `(`.
CALL_RE = re.compile(
    r"(?<![\w.])(?<!->)(" + "|".join(sorted(BANNED)) + r")\s*\(")
SPDX_RE = re.compile(r"^(/\*|//)\s*SPDX-License-Identifier:\s*\S")


def blank_comments_and_literals(text):
    """Returns text with comments and string/char literals replaced by
    spaces, newlines kept, so that offsets and line numbers still match."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == "/" and text.startswith("//", i):
            j = i
            # A // comment runs to a newline not escaped by a backslash.
            while j < n and text[j] != "\n":
                j += 2 if text.startswith("\\\n", j) else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_header(path, lines):
    name = os.path.basename(path)
    want = "/* " + name + " \u2014 "
    first = 0
    if lines and SPDX_RE.match(lines[0]):
        first = 1
    if len(lines) <= first:
        return [(first + 1, "file does not open with its header comment "
                 "(`%s<title>`): file is empty" % want)]
    line = lines[first]
    if line.startswith(want) and line[len(want):].strip():
        return []
    if line.startswith("/* " + name + " "):
        why = "the name is not followed by ` \u2014 ` and a title"
    elif line.startswith("/*"):
        why = "the comment does not start with the file's own name"
    else:
        why = "the first line is not a comment"
    return [(first + 1, "file does not open with its header comment "
             "(`%s<title>`): %s" % (want, why))]


def check_calls(text):
    found = []
    code = blank_comments_and_literals(text)
    for m in CALL_RE.finditer(code):
        line = code.count("\n", 0, m.start()) + 1
        fn = m.group(1)
        found.append((line, "banned call %s(): %s" % (fn, BANNED[fn])))
    return found


def main(argv):
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    bad = 0
    for path in argv:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            print("%s:1: cannot read as UTF-8 (%s)" % (path, e))
            bad += 1
            continue
        findings = check_header(path, text.splitlines()) + check_calls(text)
        for line, why in sorted(findings, key=lambda f: f[0]):
            print("%s:%d: %s" % (path, line, why))
        bad += len(findings)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
