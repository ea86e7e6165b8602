#!/bin/sh
# test_example_install.sh - a user's view of the library: install the build
# into a temporary prefix, build examples/generate.c against the installed
# header and library with pkg-config (shared, then static), run both on the
# tiny fixture model with two fixture LoRAs, and check exit 0 and two valid
# PNGs each. The installed data folder must be what the library reads.
# Run from the source root: sh tests/e2e/test_example_install.sh BIN
set -u
BIN=${1:-build/loramix}
B=$(dirname "$BIN")
LC_ALL=C
export LC_ALL
fail=0
no() { echo "FAIL: $*"; fail=1; }
CC=${CC:-cc}
command -v pkg-config >/dev/null || { echo "FAIL: pkg-config not found"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/lmx_example.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
P=$T/prefix
M=tests/fixtures/models/tiny-sd
L1=tests/fixtures/compose/character_1.safetensors
L2=tests/fixtures/compose/style_1.safetensors

cmake --install "$B" --prefix "$P" >"$T/install.log" 2>&1 || { cat "$T/install.log"; echo "FAIL: cmake --install"; exit 1; }
for f in include/loramix.h lib/libloramix.a lib/libloramix.so lib/libloramix.so.0 lib/pkgconfig/loramix.pc \
         bin/loramix share/loramix/clip; do
    [ -e "$P/$f" ] || no "install left out $f"
done
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
[ "$(pkg-config --modversion loramix 2>&1)" = "$("$BIN" --version 2>/dev/null | sed -n 's/.* \([0-9][0-9.]*\).*/\1/p' | head -1)" ] ||
    no "pkg-config --modversion loramix ($(pkg-config --modversion loramix 2>&1)) differs from loramix --version"

# png_ok FILE: a PNG signature and an IHDR chunk.
png_ok() {
    [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(dd if="$1" bs=1 skip=12 count=4 2>/dev/null)" = IHDR ]
}

# run NAME: run the example binary $T/NAME and check its two images.
run() {
    LMX_DATA_DIR="$P/share/loramix" LD_LIBRARY_PATH="$P/lib" "$T/$1" "$M" "$T/$1_base.png" "$T/$1_lora.png" "$L1" "$L2" \
        >"$T/$1.out" 2>&1 || { cat "$T/$1.out"; no "$1: example exited non-zero"; return; }
    png_ok "$T/$1_base.png" || no "$1: base image is not a PNG"
    png_ok "$T/$1_lora.png" || no "$1: composed image is not a PNG"
    cmp -s "$T/$1_base.png" "$T/$1_lora.png" && no "$1: the LoRAs changed nothing"
}

# Shared: the example must load libloramix.so.0 from the prefix.
if $CC -std=c11 -Wall -Wextra -Wpedantic -Werror examples/generate.c \
        $(pkg-config --cflags --libs loramix) -o "$T/gen_shared" 2>"$T/cc.log"; then
    LD_LIBRARY_PATH="$P/lib" ldd "$T/gen_shared" | grep -q "libloramix.so.0 => $P/lib/" ||
        no "gen_shared does not load libloramix.so.0 from the prefix"
    run gen_shared
else
    cat "$T/cc.log"; no "examples/generate.c does not build against the shared library"
fi

# Static: the archive plus Libs.private/Requires.private.
if $CC -std=c11 -Wall -Werror examples/generate.c \
        $(pkg-config --cflags --static --libs loramix | sed 's/-lloramix/-l:libloramix.a/') -o "$T/gen_static" 2>"$T/cc.log"; then
    ldd "$T/gen_static" | grep -q libloramix && no "gen_static needs libloramix.so"
    run gen_static
    cmp -s "$T/gen_shared_lora.png" "$T/gen_static_lora.png" || no "static and shared builds made different images"
else
    cat "$T/cc.log"; no "examples/generate.c does not build against the static library"
fi

[ $fail -eq 0 ] && echo "test_example_install: ok"
exit $fail
