#!/bin/sh
# The repository stands alone: no tracked file refers to a path outside it.
# Users and contributors have only this checkout, so a comment, a doc page, a
# data file or a script that cites a specification folder beside the
# repository, a parent folder or a machine's absolute path points at nothing.
# The definitions the code relies on live in docs/ (docs/methods.md,
# docs/numerics.md, docs/testbed.md); cite them as docs/NAME.md (inside docs/, a bare NAME.md is a
# relative link and must name a page that exists).
#
# Complements test_docs_refs.sh, which checks the messages compiled into the
# binary and the links between the doc pages.
#
# Not checked: binary files (grep -I; e.g. a golden's metadata written by an
# older reference script), .ci/ (the CI runner names the paths of its own
# container), and a line carrying the marker "standalone-ok" (a test that
# asserts a message does NOT cite such a file has to spell the name).
set -u
fail=0
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files > "$T/files"
else
    find . -type f ! -path './.git/*' ! -path './build*' ! -path '*/build/*' | sed 's#^\./##' > "$T/files"
fi
[ -s "$T/files" ] || { echo "FAIL: no files to check (run from the repository root)"; exit 1; }

# Paths outside the repository: a sibling spec/notes folder, a parent folder,
# an absolute path of the development machine. (Written so that this file
# does not match itself.)
OUTSIDE='shared/(spec|notes)|\.\./shared|/wor[k]/|spe[c] §'
# Spec file names that must be cited with their docs/ folder.
NAMES='(methods|numerics|evaluation|testbed)\.md'

n=0
while IFS= read -r f; do
    case $f in .ci/*) continue ;; esac
    [ -f "$f" ] || continue
    n=$((n + 1))
    grep -I -n -E "$OUTSIDE" "$f" 2>/dev/null | grep -v 'standalone-ok' | sed "s#^#$f:#" >> "$T/outside"
    # Bare spec names: drop every docs/NAME.md first, then look for what is left.
    grep -I -n -E "$NAMES" "$f" 2>/dev/null | grep -v 'standalone-ok' |
        sed -E 's#docs/(methods|numerics|evaluation|testbed)\.md##g' |
        grep -E "$NAMES" | sed "s#^#$f:#" > "$T/bare"
    case $f in
    docs/*)
        # Inside docs/ a bare name is a link to a sibling page: fine if it exists.
        for name in $(grep -oE "$NAMES" "$T/bare" | sort -u); do
            [ -e "docs/$name" ] || grep -E "(^|[^a-z_-])$name" "$T/bare" >> "$T/names"
        done ;;
    *)  cat "$T/bare" >> "$T/names" ;;
    esac
done < "$T/files"

if [ -s "$T/outside" ]; then
    echo "FAIL: tracked files refer to paths outside the repository:"
    sed 's/^/  /' "$T/outside"
    fail=1
fi
if [ -s "$T/names" ]; then
    echo "FAIL: tracked files cite a specification file without its docs/ folder (or one docs/ lacks):"
    sed 's/^/  /' "$T/names"
    fail=1
fi
# Every docs/NAME.md cited anywhere exists.
for name in methods numerics evaluation testbed; do
    if xargs grep -I -l "docs/$name\.md" < "$T/files" 2>/dev/null | grep -q . && [ ! -e "docs/$name.md" ]; then
        echo "FAIL: docs/$name.md is cited but does not exist"; fail=1
    fi
done
[ $fail = 0 ] && echo "test_repo_standalone: ok ($n files)"
exit $fail
