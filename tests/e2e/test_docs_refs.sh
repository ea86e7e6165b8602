#!/bin/sh
# What users read cites only what the repository holds: no message compiled
# into the CLI and no page of README.md or docs/ may point at specification
# files that are not shipped (shared/spec/..., methods.md §N, ../shared).
set -u
BIN=${1:-build/loramix}
fail=0
PAT='shared/spec|shared/notes|\.\./shared|methods\.md *§|numerics\.md|methods\.md|spec §'
command -v strings >/dev/null 2>&1 || { echo "SKIP: no strings(1)"; exit 0; }
[ -x "$BIN" ] || { echo "FAIL: no binary $BIN"; exit 1; }
hits=$(strings -a "$BIN" | grep -E "$PAT")
if [ -n "$hits" ]; then
    echo "FAIL: $BIN has messages citing files outside the repository:"
    echo "$hits" | sed 's/^/  /'
    fail=1
fi
hits=$(grep -nE "$PAT" README.md docs/*.md)
if [ -n "$hits" ]; then
    echo "FAIL: docs cite files outside the repository:"
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
