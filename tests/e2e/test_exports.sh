#!/bin/sh
# test_exports.sh - libloramix.so exports the public API and nothing else:
# every defined dynamic symbol starts with lmx_, and the exported functions
# are exactly the LMX_API declarations of include/loramix.h. The shared
# library sits next to the CLI in the build folder; it has SONAME
# libloramix.so.0. Run from the source root: sh tests/e2e/test_exports.sh BIN
set -u
BIN=${1:-build/loramix}
B=$(dirname "$BIN")
SO=$B/libloramix.so
LC_ALL=C
export LC_ALL
fail=0
no() { echo "FAIL: $*"; fail=1; }
[ -f "$SO" ] || { echo "FAIL: no shared library at $SO"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/lmx_exports.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM

nm -D --defined-only "$SO" | awk 'NF == 3 { print $3 }' | sort >"$T/exported"
[ -s "$T/exported" ] || no "nm -D found no defined symbols in $SO"
grep -v '^lmx_' "$T/exported" >"$T/stray"
[ -s "$T/stray" ] && no "$SO exports $(wc -l <"$T/stray") symbols without the lmx_ prefix: $(head -5 "$T/stray" | tr '\n' ' ')"

# The declared API: the identifier before the first '(' on each LMX_API line.
sed -n 's/^LMX_API[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' include/loramix.h | sort >"$T/declared"
[ "$(wc -l <"$T/declared")" -ge 20 ] || no "found only $(wc -l <"$T/declared") LMX_API declarations in include/loramix.h"
comm -13 "$T/exported" "$T/declared" >"$T/missing"
[ -s "$T/missing" ] && no "declared LMX_API but not exported: $(tr '\n' ' ' <"$T/missing")"
comm -23 "$T/exported" "$T/declared" >"$T/extra"
[ -s "$T/extra" ] && no "exported but not declared LMX_API in include/loramix.h: $(tr '\n' ' ' <"$T/extra")"

# Every function prototype in the header carries LMX_API (a declaration
# without it would be hidden in the shared library).
grep -nE '^(const |void|int|size_t|uint64_t|lmx_[a-z_]+ \*?lmx_)[^;]*\(' include/loramix.h >"$T/bare"
[ -s "$T/bare" ] && no "public declarations without LMX_API: $(cut -c1-60 <"$T/bare" | tr '\n' '|')"

soname=$(readelf -d "$SO" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = libloramix.so.0 ] || no "SONAME is '$soname', expected libloramix.so.0"

[ $fail -eq 0 ] && echo "test_exports: ok ($(wc -l <"$T/exported") symbols)"
exit $fail
