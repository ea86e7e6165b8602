#!/bin/sh
# What users read cites only what the repository holds: no message compiled
# into the CLI may point at a specification file that is not shipped (a
# sibling spec or notes folder, a parent folder, a bare spec name without its
# docs/ folder), and the links between README.md and docs/ pages resolve.
# test_repo_standalone.sh applies the same rule to every tracked file
# (sources, docs, data); this test covers the built binary.
set -u
BIN=${1:-build/loramix}
fail=0
PAT='shared/(spec|notes)|\.\./shared|spe[c] §'
# Spec names count only when not cited as docs/NAME.md.
NAMES='(methods|numerics|evaluation|testbed)\.md'
command -v strings >/dev/null 2>&1 || { echo "SKIP: no strings(1)"; exit 0; }
[ -x "$BIN" ] || { echo "FAIL: no binary $BIN"; exit 1; }
hits=$(strings -a "$BIN" | sed -E 's#docs/(methods|numerics|evaluation|testbed)\.md##g' | grep -E "$PAT|$NAMES")
if [ -n "$hits" ]; then
    echo "FAIL: $BIN has messages citing files outside the repository:"
    echo "$hits" | sed 's/^/  /'
    fail=1
fi
# Relative links between pages point at pages that exist.
for f in README.md docs/*.md; do
    d=$(dirname "$f")
    for l in $(grep -oE '\]\([^)#:]+\.md(#[^)]*)?\)' "$f" | sed 's/^](//; s/)$//; s/#.*//'); do
        [ -e "$d/$l" ] || { echo "FAIL: $f links to $l, which does not exist"; fail=1; }
    done
done
[ $fail = 0 ] && echo "test_docs_refs: ok"
