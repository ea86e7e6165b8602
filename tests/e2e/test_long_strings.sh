#!/bin/sh
# Strings of any length: a --vae path of over 3,000 characters (a real deep
# directory, and one that does not exist), a prompt far past CLIP's 77
# tokens, a long LoRA name and a long trigger list. The PNG metadata (A1111
# `parameters` and the JSON chunk) holds every string whole; an error names
# the start of the path and still ends with the reason, on one line of
# bounded length. Run under ASan too (build-asan): no overflow anywhere.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd
C=tests/fixtures/compose
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# A real directory more than 3,000 characters deep holding the model's VAE.
seg=vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv
d=$T
while [ ${#d} -lt 3000 ]; do d="$d/$seg"; done
mkdir -p "$d" || { echo "FAIL: cannot make a deep directory"; exit 1; }
cp -r $M/vae "$d/vae"
V="$d/vae"
[ ${#V} -gt 3000 ] || no "the --vae path is only ${#V} characters"

# A prompt of 4,000+ characters (about 600 words, far past 77 tokens).
P="a photo of a cat"
i=0
while [ ${#P} -lt 4000 ]; do P="$P, detail$i"; i=$((i + 1)); done
NEG="blurry"
while [ ${#NEG} -lt 2500 ]; do NEG="$NEG, lowres"; done

"$BIN" generate -m $M --vae "$V" -p "$P" -n "$NEG" --steps 2 -q -o "$T/vae.png" 2>"$T/vae.err" ||
    no "long --vae path / prompt failed: $(head -c 300 "$T/vae.err")"
grep -aqF ", VAE: $V, Version: loramix" "$T/vae.png" || no "parameters lack the whole --vae path"
grep -aqF "\"vae\":\"$V\"" "$T/vae.png" || no "JSON lacks the whole --vae path"
grep -aqF "$P
Negative prompt: $NEG
Steps: 2," "$T/vae.png" || no "parameters lack the whole prompt / negative prompt"
grep -aqF "\"prompt\":\"$P\"" "$T/vae.png" || no "JSON lacks the whole prompt"
grep -aqF "\"negative_prompt\":\"$NEG\"" "$T/vae.png" || no "JSON lacks the whole negative prompt"
grep -q "AddressSanitizer\|runtime error" "$T/vae.err" && no "sanitizer report: $(head -c 300 "$T/vae.err")"

# The same path, missing: a one-line error that starts with the flag and
# the path and still ends with the reason; nothing written.
"$BIN" generate -m $M --vae "$d/none" -p x --steps 2 -q -o "$T/none.png" 2>"$T/none.err"
rc=$?
[ $rc = 1 ] || no "missing long --vae path: exit $rc (expected 1): $(head -c 300 "$T/none.err")"
[ "$(wc -l <"$T/none.err")" -eq 1 ] || no "missing long --vae path: not one line"
[ "$(wc -c <"$T/none.err")" -le 4096 ] || no "missing long --vae path: message not bounded ($(wc -c <"$T/none.err") bytes)"
grep -qF -- "--vae: $T/$seg/" "$T/none.err" || no "missing long --vae path: message does not start with the path"
grep -q "none: .*No such file or directory\$" "$T/none.err" ||
    no "missing long --vae path: reason lost: ...$(tail -c 200 "$T/none.err")"
[ -e "$T/none.png" ] && no "an output file was written on error"

# A 2,500-character LoRA name and 300 triggers (about 2,800 characters).
N=$(printf 'loraname%.0s' $(seq 1 320))
TR=$(i=1; while [ $i -le 300 ]; do printf 'trig%d, ' $i; i=$((i + 1)); done)
TR=${TR%, }
"$BIN" generate -m $M -p "$P" --steps 2 -q --vae "$V" \
    --lora $C/character_1.safetensors:0.8 --name "$N" --trigger "$TR" --category character \
    --lora $C/style_1.safetensors:0.9 --name "${N}2" --trigger "film grain" --category style \
    --method composite -o "$T/lora.png" 2>"$T/lora.err" ||
    no "long LoRA name / triggers failed: $(head -c 300 "$T/lora.err")"
grep -aqF ", VAE: $V, Lora: $N:0.8 ${N}2:0.9, Composition: composite" "$T/lora.png" ||
    no "parameters lack the whole LoRA names / composition"
grep -aqF ", Version: loramix" "$T/lora.png" || no "parameters cut before the version"
grep -aqF "\"name\":\"$N\"" "$T/lora.png" || no "JSON lacks the whole LoRA name"
grep -aqF "\"trig1\",\"trig2\"" "$T/lora.png" && grep -aqF "\"trig300\"" "$T/lora.png" ||
    no "JSON lacks the whole trigger list"
grep -q "AddressSanitizer\|runtime error" "$T/lora.err" && no "sanitizer report: $(head -c 300 "$T/lora.err")"

[ $fail = 0 ] && echo "test_long_strings: ok"
exit $fail
