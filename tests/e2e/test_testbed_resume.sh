#!/bin/sh
# loramix testbed run/merge on the tiny model (no LoRAs: --no-lora; the LoRA
# side is test_testbed_lora.sh): a run killed with kill -9 again and again,
# then resumed, yields every expected image exactly once and bit-identical
# to an uninterrupted run; two shards (sharing a folder, or in two folders)
# equal one unsharded run; merge reports completeness, missing jobs,
# duplicates and conflicts with the right exit status.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd
JOBS=30
RUN="$BIN testbed run --model $M --no-lora --steps 3 -W 64 -H 64 --threads 1 --limit $JOBS --methods merge,composite -q"

pngs() { (cd "$1" && find . -name '*.png' | sort); }
sidecars() { (cd "$1" && find . -path ./logs -prune -o -name '*.json' ! -name testbed-run.json -print | sort); }
same_images() { # same names and bytes in $1 and $2
    pngs "$1" > "$T/l1"
    pngs "$2" > "$T/l2"
    cmp -s "$T/l1" "$T/l2" || { no "$3: different image lists"; diff "$T/l1" "$T/l2" | head -5; return; }
    while read -r f; do cmp -s "$1/$f" "$2/$f" || no "$3: $f differs"; done < "$T/l1"
}
count() { wc -l | tr -d ' '; }

# 1. The uninterrupted reference.
$RUN --out "$T/ref" 2>/dev/null || no "reference run failed"
[ "$(pngs "$T/ref" | count)" = $JOBS ] || no "reference has $(pngs "$T/ref" | count) images, expected $JOBS"
[ "$(sidecars "$T/ref" | count)" = $JOBS ] || no "reference has $(sidecars "$T/ref" | count) sidecars"
grep -q '"event":"run_end"' "$T/ref/logs/shard-1-of-1.jsonl" || no "run log"

# 2. kill -9 at varied moments while jobs are running, then resume.
killed=0
for d in 0.01 0.13 0.05 0.21 0.08 0.02 0.17; do
    before=$(sidecars "$T/k" 2>/dev/null | count)
    [ "$before" = $JOBS ] && break
    $RUN --out "$T/k" 2>/dev/null &
    pid=$!
    # wait until this run has finished one more job (or ended), then kill it
    i=0
    while [ $i -lt 200 ] && kill -0 $pid 2>/dev/null && [ "$(sidecars "$T/k" 2>/dev/null | count)" = "$before" ]; do
        sleep 0.02
        i=$((i + 1))
    done
    sleep $d
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    [ $? = 137 ] && killed=$((killed + 1))
done
[ $killed -ge 3 ] || no "only $killed runs were killed mid-way (machine too fast or too slow?)"
$RUN --out "$T/k" 2> "$T/resume.txt" || no "resumed run failed"
same_images "$T/ref" "$T/k" "killed+resumed"
[ "$(sidecars "$T/k" | count)" = $JOBS ] || no "killed+resumed: $(sidecars "$T/k" | count) sidecars"
find "$T/k" -name '*.tmp.*' | grep -q . && no "temporary files left: $(find "$T/k" -name '*.tmp.*')"
# Every job was completed exactly once ("done" at most once per job in the logs).
grep -h '"event":"done"' "$T/k/logs/"*.jsonl | sed 's/.*"job":"\([^"]*\)".*/\1/' | sort | uniq -d > "$T/twice"
[ -s "$T/twice" ] && no "jobs done twice: $(cat "$T/twice")"
# A second resume has nothing to do.
$BIN testbed run --model $M --no-lora --steps 3 -W 64 -H 64 --threads 1 --limit $JOBS --methods merge,composite \
    --out "$T/k" 2> "$T/again.txt" || no "third run failed"
grep -q "0 done now, $JOBS already done, 0 failed" "$T/again.txt" || no "resume redid work: $(tail -1 "$T/again.txt")"
# Other settings in the same folder are refused.
$BIN testbed run --model $M --no-lora --steps 4 -W 64 -H 64 --threads 1 --limit $JOBS --methods merge,composite \
    -q --out "$T/k" 2> "$T/err.txt" && no "a run with other settings was accepted"
grep -q "other settings" "$T/err.txt" || no "settings message: $(cat "$T/err.txt")"

# 3. Shards: two at once in one folder, and two folders.
$RUN --out "$T/s" --shard 1/2 2>/dev/null & p1=$!
$RUN --out "$T/s" --shard 2/2 2>/dev/null & p2=$!
wait $p1 || no "shard 1/2 failed"
wait $p2 || no "shard 2/2 failed"
same_images "$T/ref" "$T/s" "two shards in one folder"
[ -s "$T/s/logs/shard-1-of-2.jsonl" ] && [ -s "$T/s/logs/shard-2-of-2.jsonl" ] || no "shard logs"
$RUN --out "$T/s1" --shard 1/2 2>/dev/null || no "shard 1/2 (own folder) failed"
$RUN --out "$T/s2" --shard 2/2 2>/dev/null || no "shard 2/2 (own folder) failed"
[ "$(pngs "$T/s1" | count)" = $((JOBS / 2)) ] || no "shard 1/2 has $(pngs "$T/s1" | count) images"
mkdir -p "$T/u"
cp -r "$T/s1/." "$T/u/" && cp -r "$T/s2/." "$T/u/"
same_images "$T/ref" "$T/u" "two shard folders"

# 4. Merge.
MERGE="$BIN testbed merge"
$MERGE --out "$T/s" 2> "$T/m.txt" || no "merge of the shared folder: $(cat "$T/m.txt")"
grep -q "merge: $JOBS of $JOBS jobs complete, 0 missing" "$T/m.txt" || no "merge summary: $(cat "$T/m.txt")"
[ "$(wc -l < "$T/s/index.jsonl")" = $JOBS ] || no "index lines"
head -1 "$T/s/index.jsonl" | grep -q '"id":"anime/merge_2/character_1_clothing_1_1_seed42".*"image":' || no "index entry"
$MERGE --out "$T/s1" --out "$T/s2" --index "$T/all.jsonl" --verify 2> "$T/m.txt" || no "merge of two folders: $(cat "$T/m.txt")"
[ "$(wc -l < "$T/all.jsonl")" = $JOBS ] || no "merged index lines"
$MERGE --out "$T/s1" --limit $JOBS --methods merge,composite 2> "$T/m.txt" && no "merge of half a run succeeded"
grep -q "$((JOBS / 2)) missing" "$T/m.txt" || no "missing count: $(tail -2 "$T/m.txt")"
grep -q "^missing: anime/merge_2/character_1_clothing_1_2_seed43$" "$T/m.txt" || no "missing list"
$BIN testbed plan --limit $JOBS --methods merge,composite -q > "$T/plan.jsonl"
$MERGE --out "$T/ref" --out "$T/k" --plan "$T/plan.jsonl" --index "$T/dup.jsonl" 2> "$T/m.txt" || no "merge with duplicates"
grep -q "$JOBS duplicate, 0 conflicting" "$T/m.txt" || no "duplicates: $(tail -2 "$T/m.txt")"
grep -q "recomputed" "$T/m.txt" && no "jobs reported as recomputed: $(grep recomputed "$T/m.txt" | head -3)"
# A PNG replaced behind the sidecar's back: corrupt (--verify checks the CRC).
f=anime/composite_2/character_1_clothing_1_1_seed42.png
cp "$T/ref/anime/merge_2/character_1_clothing_1_2_seed43.png" "$T/u/$f.new" && mv "$T/u/$f.new" "$T/u/$f"
$MERGE --out "$T/ref" --out "$T/u" --plan "$T/plan.jsonl" --index "$T/c.jsonl" --verify 2> "$T/m.txt" \
    && no "a corrupt copy passed"
grep -q "^corrupt: $T/u/anime/composite_2/character_1_clothing_1_1_seed42" "$T/m.txt" || no "corrupt: $(cat "$T/m.txt")"
# Copies made with another thread count differ (the PNG records it): a conflict.
$BIN testbed run --model $M --no-lora --steps 3 -W 64 -H 64 --threads 2 --limit 2 --methods merge,composite -q \
    --out "$T/t2" 2>/dev/null || no "run with 2 threads failed"
$MERGE --out "$T/ref" --out "$T/t2" --limit 2 --methods merge,composite --index "$T/t.jsonl" 2> "$T/m.txt" \
    && no "a conflict passed"
grep -q "^conflict: anime/merge_2/character_1_clothing_1_1_seed42 is complete in 2 folders with different images" \
    "$T/m.txt" || no "conflict: $(cat "$T/m.txt")"
rm "$T/ref/anime/merge_2/character_1_clothing_1_1_seed42.json"
$MERGE --out "$T/ref" -q 2> "$T/m.txt" && no "merge with a lost sidecar succeeded"
grep -q "1 missing" "$T/m.txt" || no "lost sidecar: $(cat "$T/m.txt")"
[ $fail = 0 ] && echo "test_testbed_resume: ok ($killed runs killed mid-way)"
exit $fail
