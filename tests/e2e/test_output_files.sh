#!/bin/sh
# Where `loramix generate -o` writes (docs/file-formats.md, "Where a PNG
# goes"): "-" is stdout, character devices and FIFOs are written through,
# symlinks are followed and stay links, an existing file needs --overwrite
# and keeps its mode, a read-only file is never replaced, new files follow
# the umask, 250-byte names work, and every output name is checked before
# the model is loaded (shown with a model path that does not exist: the
# output error comes first).
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=$(pwd)/tests/fixtures/models/tiny-sd
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
cd "$T" || exit 1 # a regression writing a file named "-" lands here
gen() { timeout 120 "$BIN" generate -m $M -p "a red fox" -W 64 -H 64 --steps 2 "$@"; }
mode() { stat -c %a "$1"; }
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

# A new file: 0666 minus the umask (not mkstemp's 0600, not a fixed 0644).
(umask 002; gen -q -o "$T/a.png") || no "plain -o failed"
is_png "$T/a.png" || no "a.png is not a PNG"
[ "$(mode "$T/a.png")" = 664 ] || no "new file under umask 002 has mode $(mode "$T/a.png"), not 664"

# -o -: the PNG alone on stdout (progress and summary on stderr), the same
# bytes as the file.
gen -o - >"$T/stdout.png" 2>"$T/stdout.err" || no "-o - failed: $(cat "$T/stdout.err")"
is_png "$T/stdout.png" || no "-o - did not give a PNG on stdout"
cmp -s "$T/stdout.png" "$T/a.png" || no "-o - output differs from the -o file"
grep -q "wrote standard output" "$T/stdout.err" || no "-o - summary missing on stderr"

# expect_pre NAME PATTERN -- args: fails before the model load (the model
# path does not exist, yet the error is about the output) and writes nothing.
expect_pre() {
    name=$1; pat=$2; shift 3
    timeout 60 "$BIN" generate -m "$T/no-such-model" -p x -q "$@" >"$T/pre.out" 2>"$T/pre.err"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then no "$name: exit $rc"; fi
    grep -q -- "$pat" "$T/pre.err" || no "$name: stderr lacks '$pat': $(cat "$T/pre.err")"
    grep -q "no-such-model" "$T/pre.err" && no "$name: the model was tried before the output check"
    [ -s "$T/pre.out" ] && no "$name: wrote to stdout"
}

# An existing file is not replaced without --overwrite.
cp "$T/a.png" "$T/keep.png"
expect_pre exists "already exists.*--overwrite" -- -o "$T/a.png"
cmp -s "$T/a.png" "$T/keep.png" || no "a refused overwrite changed the file"

# A symlink is followed: its target is replaced (with --overwrite) and keeps
# its mode; the link stays a link.
chmod 604 "$T/a.png"
ln -s a.png "$T/link.png"
expect_pre link-exists "already exists" -- -o "$T/link.png"
(umask 022; gen -q --seed 7 --overwrite -o "$T/link.png") || no "--overwrite through a symlink failed"
[ -L "$T/link.png" ] || no "the symlink was replaced by a file"
[ "$(mode "$T/a.png")" = 604 ] || no "an overwritten file has mode $(mode "$T/a.png"), not its 604"
is_png "$T/a.png" && ! cmp -s "$T/a.png" "$T/keep.png" || no "the symlink's target was not rewritten"

# A read-only file is refused, with or without --overwrite (root included).
cp "$T/keep.png" "$T/ro.png"; chmod 444 "$T/ro.png"
expect_pre ro "already exists" -- -o "$T/ro.png"
expect_pre ro-overwrite "read-only" -- --overwrite -o "$T/ro.png"
[ "$(mode "$T/ro.png")" = 444 ] && cmp -s "$T/ro.png" "$T/keep.png" || no "the read-only file changed"

# Long names: 250 bytes with --images 2 (<245 bytes>-1.png, -2.png).
long=$(printf 'n%.0s' $(seq 245))
gen -q --images 2 -o "$T/$long.png" || no "a 250-byte file name failed"
is_png "$T/$long-1.png" && is_png "$T/$long-2.png" || no "the 250-byte names were not written"
expect_pre too-long "longer than the file system allows" -- -o "$T/${long}xxxxxxxxxxxx.png"

# --images N: every name is checked first.
touch "$T/multi-2.png"
expect_pre images-exists "multi-2.png: already exists" -- --images 2 -o "$T/multi.png"
[ -e "$T/multi-1.png" ] && no "--images wrote multi-1.png though multi-2.png was refused"

# Folders that cannot take the file.
expect_pre missing-dir "does not exist" -- -o "$T/missing/x.png"
touch "$T/plain"
expect_pre parent-file "not a folder" -- -o "$T/plain/x.png"
expect_pre folder "is a folder" -- -o "$T"
expect_pre proc "cannot create a file in folder '/proc'" -- -o /proc/loramix-test.png
if [ "$(id -u)" != 0 ]; then
    mkdir "$T/ro-dir"; chmod 555 "$T/ro-dir"
    expect_pre ro-dir "cannot create a file in folder" -- -o "$T/ro-dir/x.png"
else
    echo "test_output_files: root: the chmod 555 folder case is skipped (root writes there); /proc covers it"
fi

# A FIFO is written through (not replaced by a file). The reader is killed
# when the writer never opened the FIFO, so a failure cannot hang the test.
mkfifo "$T/fifo"
timeout 120 cat "$T/fifo" >"$T/from-fifo" &
reader=$!
if gen -q -o "$T/fifo" && [ -p "$T/fifo" ]; then
    wait $reader
    cmp -s "$T/from-fifo" "$T/stdout.png" || no "the FIFO's reader did not get the PNG"
else
    kill $reader 2>/dev/null; wait $reader 2>/dev/null
    no "writing to a FIFO failed or replaced it"
fi

# Character devices are written directly, never replaced. The test uses its
# own device nodes (root: mknod, the same devices as /dev/null and /dev/full)
# or else symlinks to them, so a regression can only replace files in $T.
if mknod "$T/null" c 1 3 2>/dev/null && mknod "$T/full" c 1 7 2>/dev/null; then :; else
    echo "test_output_files: cannot mknod (not root?): using symlinks to /dev/null and /dev/full"
    rm -f "$T/null" "$T/full"
    ln -s /dev/null "$T/null"; ln -s /dev/full "$T/full"
fi
gen -q --images 2 -o "$T/null" || no "-o null device failed"
[ -c "$T/null" ] || no "the null device is no longer a character device"
[ -e "$T/null-1" ] && no "--images 2 -o <device> made null-1 instead of writing the device"
gen -q -o "$T/full" 2>"$T/full.err" && no "-o full device succeeded"
grep -q "full.*No space left" "$T/full.err" || no "full device error: $(cat "$T/full.err")"
[ -c "$T/full" ] || no "the full device is no longer a character device"

# No temporary file is left anywhere.
ls -A "$T" | grep -q '^\.lmx-' && no "temporary files left: $(ls -A "$T" | grep '^\.lmx-')"
"$BIN" generate --help | grep -q -- "--overwrite" || no "--help does not explain --overwrite"
[ $fail = 0 ] && echo "test_output_files: ok"
exit $fail
