#!/bin/sh
# The CLI's messages say what the user typed: each context prefix once, CLI
# flags rather than API field names, files that exist in the repository,
# and what to do next.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
M=tests/fixtures/models/tiny-sd
C=tests/fixtures/compose

# run EXPECTED_RC CMD_ARGS... ; stdout in $T/out, stderr in $T/err
run() {
    want=$1; shift
    timeout 120 "$BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" != "$want" ]; then echo "FAIL $*: exit $rc, expected $want"; cat "$T/err"; fail=1; fi
}
# has NAME PATTERN: stderr matches; lacks NAME PATTERN: it does not
has() { grep -q -- "$2" "$T/err" || { echo "FAIL $1: stderr lacks '$2':"; cat "$T/err"; fail=1; }; }
lacks() { if grep -q -- "$2" "$T/err"; then echo "FAIL $1: stderr has '$2':"; cat "$T/err"; fail=1; fi; }

# --- invalid UTF-8: the text is named once, and it is the right text -------
bad=$(printf 'a red \377 fox')
run 2 generate -q -m $M -p "$bad" -o "$T/x.png" --overwrite
has utf8-prompt "error: prompt: invalid UTF-8 at byte 6"
lacks utf8-prompt "prompt: prompt:"
run 2 generate -q -m $M -p fox -n "$bad" -o "$T/x.png" --overwrite
has utf8-negative "error: negative prompt: invalid UTF-8 at byte 6"
lacks utf8-negative "prompt: prompt:"
for w in paw ptw; do
    run 2 weights -m $M -p "$bad" --lora $C/character_1.safetensors --trigger iu1 \
        --lora $C/style_1.safetensors --trigger grain --weighting $w
    has "utf8-weights-$w" "error: prompt: invalid UTF-8 at byte 6"
    lacks "utf8-weights-$w" "LoRA 'character_1'"
done
run 2 weights -m $M -p fox --lora $C/character_1.safetensors --trigger iu1 \
    --lora $C/style_1.safetensors --trigger "$(printf 'gr\377')" --weighting paw
has utf8-trigger "LoRA 'style_1': trigger: invalid UTF-8 at byte 2"

# --- the CLI names its flags, not the library's fields --------------------
# char_kohya has conv_in/time_embedding modules that are ignored by default.
run 0 generate -m $M -p fox --steps 1 -W 64 -H 64 -o "$T/x.png" --overwrite \
    --lora tests/fixtures/lora/char_kohya.safetensors --trigger scarlett
has dropped-flag "lora inspect --apply-all"
run 0 weights -m $M -p fox --lora $C/character_1.safetensors \
    --lora $C/style_1.safetensors --trigger grain --weighting paw
has no-trigger "docs/composition.md"
lacks no-trigger "methods.md"   # standalone-ok: asserts the message cites no spec file

# --- a LoRA id the manifest lacks is named as such, with the ids it has ----
MAN=data/testbed/reality_lora_info.json
run 1 generate -q -m $M -p fox --steps 1 -W 64 -H 64 -o "$T/x.png" --overwrite --manifest $MAN --lora character_9
has manifest-id "--lora character_9: not in --manifest $MAN"
has manifest-id "character_1, character_2"
lacks manifest-id "cannot open"
run 1 weights -m $M -p fox --manifest $MAN --lora character_1 --lora style_9
has manifest-id-weights "--lora style_9: not in --manifest"
run 1 generate -q -m $M -p fox --steps 1 -W 64 -H 64 -o "$T/x.png" --overwrite --lora character_9
has id-no-manifest "needs --manifest"

[ $fail = 0 ] && echo "test_messages: ok"
