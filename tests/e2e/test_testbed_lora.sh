#!/bin/sh
# loramix testbed run with LoRA files on the tiny model: a LoRA folder laid
# out as {dir}/{subset}/{id}.safetensors is made at test time from the tiny
# LoRAs of tests/fixtures/lora (character -> char_kohya, clothing and style
# -> style_peft, background -> mixed_kohya, object -> object_kohya).
# Checks: every LoRA file is loaded once per run (run log), LoRAs change the
# images, the sidecar names the LoRA files and scales, every composition
# method runs and resumes, a broken LoRA file fails only the jobs that use
# it (exit status 1, the others done), and a missing one stops the run
# before any work with the full list.
#
# Until the engine generates with LoRAs (issue 4/5), the generation probe
# fails with status "unsupported" (run log) and the dependent parts print
# SKIP, as does each method the engine refuses that way; the rest (missing
# files, the broken file's load error) runs regardless.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd
F=$(pwd)/tests/fixtures/lora
L="$T/loras"
for s in anime reality; do
    mkdir -p "$L/$s"
    for i in 1 2 3; do ln -s "$F/char_kohya.safetensors" "$L/$s/character_$i.safetensors"; done
    for i in 1 2; do
        ln -s "$F/style_peft.safetensors" "$L/$s/clothing_$i.safetensors"
        ln -s "$F/style_peft.safetensors" "$L/$s/style_$i.safetensors"
        ln -s "$F/mixed_kohya.safetensors" "$L/$s/background_$i.safetensors"
        ln -s "$F/object_kohya.safetensors" "$L/$s/object_$i.safetensors"
    done
done
BASE="$BIN testbed run --model $M --lora-dir $L --steps 2 -W 64 -H 64 --threads 1 -q"

# A missing file: listed, nothing runs (needs no LoRA support).
mkdir -p "$T/lm/reality"
for f in "$L"/reality/*; do ln -s "$(readlink "$f")" "$T/lm/reality/$(basename "$f")"; done
rm "$T/lm/reality/style_2.safetensors" "$T/lm/reality/object_1.safetensors"
$BIN testbed run --model $M --lora-dir "$T/lm" --subset reality --out "$T/miss" -q 2> "$T/err.txt" \
    && no "missing LoRA files accepted"
grep -q "lm/reality/style_2.safetensors" "$T/err.txt" && grep -q "lm/reality/object_1.safetensors" "$T/err.txt" \
    || no "missing list: $(cat "$T/err.txt")"
grep -q "2 of the 11 LoRA files" "$T/err.txt" || no "missing count: $(cat "$T/err.txt")"
find "$T/miss" -name '*.png' 2>/dev/null | grep -q . && no "images written although files were missing"

# A broken LoRA file fails the jobs that use it, with a message naming it
# (the other jobs' outcome is checked after the probe).
mkdir -p "$T/lb/reality"
for f in "$L"/reality/*; do ln -s "$(readlink "$f")" "$T/lb/reality/$(basename "$f")"; done
rm "$T/lb/reality/object_1.safetensors"
printf 'not a safetensors file' > "$T/lb/reality/object_1.safetensors"
$BIN testbed run --model $M --lora-dir "$T/lb" --steps 2 -W 64 -H 64 --threads 1 -q --subset reality \
    --methods merge --seeds 42 --n 2 --out "$T/b" 2> "$T/b.txt" && no "a run with a broken LoRA exited 0"
grep '"event":"failed"' "$T/b/logs/shard-1-of-1.jsonl" | grep -c '"error":"LoRA object_1: ' | grep -qx 3 \
    || no "expected 3 jobs failed by object_1: $(grep -c failed "$T/b/logs/shard-1-of-1.jsonl")"
grep -q '"event":"lora_load".*"lora":"object_1".*"ok":false' "$T/b/logs/shard-1-of-1.jsonl" \
    || no "the broken file's load is not logged"
[ "$(grep -c '"lora":"object_1"' "$T/b/logs/shard-1-of-1.jsonl")" = 1 ] || no "the broken file was loaded more than once"

# Probe: can the engine generate with LoRAs yet?
$BASE --subset reality --methods merge --seeds 42 --limit 1 --out "$T/probe" 2> "$T/probe.txt"
if [ $? != 0 ]; then
    if grep -q '"status":"unsupported"' "$T/probe/logs/"*.jsonl 2>/dev/null; then
        echo "SKIP: generation with LoRAs is not in the engine yet: $(grep -h 'failed' "$T/probe.txt" | head -1)"
        [ $fail = 0 ] && echo "test_testbed_lora: ok (LoRA generation parts skipped)"
        exit $fail
    fi
    no "LoRA probe failed: $(cat "$T/probe.txt")"
fi

# Merge with LoRAs: every file loaded once, images differ from no-LoRA ones.
J=12
$BASE --subset reality --methods merge --limit $J --out "$T/m" 2> "$T/m.txt" || no "merge run failed: $(cat "$T/m.txt")"
[ "$(find "$T/m" -name '*.png' | wc -l)" = $J ] || no "merge run: $(find "$T/m" -name '*.png' | wc -l) images"
grep -h '"event":"lora_load"' "$T/m/logs/"*.jsonl | sed 's/.*"lora":"\([^"]*\)".*/\1/' | sort > "$T/loads"
uniq -d "$T/loads" | grep -q . && no "LoRA files loaded more than once: $(uniq -d "$T/loads")"
[ "$(wc -l < "$T/loads")" = 4 ] || no "expected 4 LoRA loads (character_1/2, clothing_1/2) for $J jobs, got $(wc -l < "$T/loads")"
s=reality/merge_2/character_1_clothing_1_1_seed42
grep -q '"file":.*reality/character_1.safetensors' "$T/m/$s.json" || no "sidecar LoRA file"
grep -q '"used":.*true' "$T/m/$s.json" || no "sidecar LoRA used"
$BIN testbed run --model $M --no-lora --steps 2 -W 64 -H 64 --threads 1 -q --subset reality --methods merge \
    --limit 1 --out "$T/nolora" 2>/dev/null || no "no-LoRA run failed"
cmp -s "$T/m/$s.png" "$T/nolora/$s.png" && no "LoRAs did not change the image"

# Every method the engine supports, and resume after a kill.
for meth in switch composite w-switch w-composite; do
    $BASE --subset anime --methods $meth --n 3 --seeds 42 --limit 1 --out "$T/p-$meth" 2> "$T/p.txt"
    if [ $? != 0 ]; then
        if grep -q '"status":"unsupported"' "$T/p-$meth/logs/"*.jsonl 2>/dev/null; then
            echo "SKIP: method $meth: $(grep -h 'failed' "$T/p.txt" | head -1)"
            continue
        fi
        no "method $meth failed: $(cat "$T/p.txt")"
        continue
    fi
    $BASE --subset anime --methods $meth --n 3 --seeds 42,43 --limit 6 --out "$T/r-$meth" 2>/dev/null \
        || no "$meth reference run"
    $BASE --subset anime --methods $meth --n 3 --seeds 42,43 --limit 6 --out "$T/k-$meth" 2>/dev/null &
    pid=$!
    i=0
    while [ $i -lt 300 ] && kill -0 $pid 2>/dev/null && ! find "$T/k-$meth" -name '*.json' ! -name 'testbed-run.json' 2>/dev/null | grep -q .; do
        sleep 0.02; i=$((i + 1))
    done
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    $BASE --subset anime --methods $meth --n 3 --seeds 42,43 --limit 6 --out "$T/k-$meth" 2>/dev/null || no "$meth resume"
    for f in $(cd "$T/r-$meth" && find . -name '*.png'); do
        cmp -s "$T/r-$meth/$f" "$T/k-$meth/$f" || no "$meth: $f differs after kill and resume"
    done
    grep -q '"method":.*"'$meth'"' "$(find "$T/r-$meth" -name '*.json' ! -name testbed-run.json | head -1)" \
        || no "$meth: sidecar method"
done

# ... and only them: the other 21 of the 24 N=2 jobs are done.
grep -c '"event":"done"' "$T/b/logs/shard-1-of-1.jsonl" | grep -qx 21 || no "expected 21 done jobs with a broken object_1"
[ $fail = 0 ] && echo "test_testbed_lora: ok"
exit $fail
