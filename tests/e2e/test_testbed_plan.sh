#!/bin/sh
# loramix testbed plan: the plan equals the reference enumeration
# (tests/fixtures/testbed/sets.tsv from reference/gen_testbed.py: subsets,
# N, set order, LoRA ids, prompts), the summary counts 24/72/96/48 per
# subset and 480 sets over both, methods and seeds nest inside sets, shards
# partition the plan, --testbed-dir reads a custom definition, and bad
# flags are refused with exit status 2.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }

"$BIN" testbed --help | grep -q "plan" || no "testbed --help"
"$BIN" testbed plan --help | grep -q -- "--shard" || no "plan --help"
"$BIN" testbed run --help | grep -q -- "--lora-dir" || no "run --help"
"$BIN" testbed merge --help | grep -q -- "--verify" || no "merge --help"

# The reference enumeration: subset, N, set, loras, prompt.
"$BIN" testbed plan --methods merge --seeds 42 --format tsv -q > "$T/plan.tsv" || no "plan failed"
cut -f3,4,5,6,11 "$T/plan.tsv" > "$T/sets.tsv"
grep -v '^#' tests/fixtures/testbed/sets.tsv > "$T/ref.tsv"
[ "$(wc -l < "$T/ref.tsv")" = 480 ] || no "reference list does not have 480 sets"
cmp -s "$T/sets.tsv" "$T/ref.tsv" || { no "plan differs from the reference enumeration"; diff "$T/sets.tsv" "$T/ref.tsv" | head -5; }

# --sets: one line per composition set, the same enumeration (480 sets; the
# default 5 methods x 3 seeds give each set 15 jobs).
"$BIN" testbed plan --help | grep -q -- "--sets" || no "plan --help lacks --sets"
"$BIN" testbed plan --sets --format tsv -q > "$T/sets2.tsv" || no "plan --sets failed"
cut -f1,2,3,4,6 "$T/sets2.tsv" | cmp -s - "$T/ref.tsv" || { no "--sets differs from the reference"; cut -f1,2,3,4,6 "$T/sets2.tsv" | diff - "$T/ref.tsv" | head -5; }
awk -F'\t' '$5 != 15 { bad = 1 } END { exit bad }' "$T/sets2.tsv" || no "--sets job counts"
"$BIN" testbed plan --sets -q > "$T/sets.jsonl" || no "plan --sets jsonl"
[ "$(wc -l < "$T/sets.jsonl")" = 480 ] || no "--sets: $(wc -l < "$T/sets.jsonl") lines, expected 480"
[ "$(grep -c '"subset":"anime"' "$T/sets.jsonl")" = 240 ] || no "--sets: anime sets"
head -1 "$T/sets.jsonl" | grep -q '^{"subset":"anime","n":2,"set":1,"loras":\["character_1","clothing_1"\],"slug":"character_1_clothing_1","jobs":15,"prompt":"' \
    || no "--sets first line: $(head -1 "$T/sets.jsonl")"
grep -q '"index"' "$T/sets.jsonl" && no "--sets printed jobs"
[ "$("$BIN" testbed plan --sets -q --subset reality --n 4 | wc -l)" = 96 ] || no "--sets: reality N=4"
# Only the sets that the selected jobs use: --limit 20 is 15 jobs of set 1, 5 of set 2.
"$BIN" testbed plan --sets --format tsv -q --limit 20 | cut -f3,5 | tr '\t\n' ': ' | grep -qx "1:15 2:5 " \
    || no "--sets with --limit: $("$BIN" testbed plan --sets --format tsv -q --limit 20 | cut -f3,5 | tr '\t\n' ': ')"
"$BIN" testbed plan --sets --summary | grep -Eq '^total +48 +144 +192 +96 +480 +7200$' || no "--sets --summary"

# --limit 0 is refused (it used to mean the whole plan), by every command.
for cmd in plan merge; do
    "$BIN" testbed $cmd --limit 0 -o "$T/none" > "$T/out.txt" 2> "$T/err.txt"
    [ $? = 2 ] || no "testbed $cmd --limit 0 was not refused with exit status 2"
    grep -q -- "--limit: 0 selects no jobs" "$T/err.txt" || no "$cmd --limit 0 message: $(cat "$T/err.txt")"
    [ -s "$T/out.txt" ] && no "$cmd --limit 0 printed jobs"
done
# (a binary that takes 0 as "no limit" would run 7,200 jobs: timeout stops it)
timeout 20 "$BIN" testbed run --model tests/fixtures/models/tiny-sd --no-lora --steps 1 -W 64 -H 64 --limit 0 \
    --out "$T/l0" > /dev/null 2> "$T/err.txt"
[ $? = 2 ] || no "testbed run --limit 0 was not refused with exit status 2"
grep -q -- "--limit: 0 selects no jobs" "$T/err.txt" || no "run --limit 0 message: $(cat "$T/err.txt")"
[ -e "$T/l0" ] && no "run --limit 0 created its output folder"
"$BIN" testbed run --help | grep -q -- "0 is" || no "run --help does not say what --limit 0 does"
[ "$("$BIN" testbed plan --limit 1 -q | wc -l)" = 1 ] || no "--limit 1"

# JSON lines carry the same sets, in the same order.
"$BIN" testbed plan --subset reality --methods merge --seeds 42 -q --out /o > "$T/plan.jsonl" || no "plan jsonl"
[ "$(wc -l < "$T/plan.jsonl")" = 240 ] || no "reality plan is not 240 lines"
head -1 "$T/plan.jsonl" | grep -q '"id":"reality/merge_2/character_1_clothing_1_1_seed42"' || no "first reality id"
head -1 "$T/plan.jsonl" | grep -q '"output":"/o/reality/merge_2/character_1_clothing_1_1_seed42.png"' || no "output path"
grep -c '"n":5,' "$T/plan.jsonl" | grep -qx 48 || no "48 reality N=5 sets"
sed -n 240p "$T/plan.jsonl" | grep -q '"loras":\["character_3","clothing_2","style_2","background_2","object_2"\]' \
    || no "last reality set"

# Summary: counts per N.
"$BIN" testbed plan --summary > "$T/sum.txt" || no "summary"
grep -Eq '^anime +24 +72 +96 +48 +240 +3600$' "$T/sum.txt" || no "anime counts: $(cat "$T/sum.txt")"
grep -Eq '^reality +24 +72 +96 +48 +240 +3600$' "$T/sum.txt" || no "reality counts"
grep -Eq '^total +48 +144 +192 +96 +480 +7200$' "$T/sum.txt" || no "total counts"
"$BIN" testbed plan --methods merge,w-switch --seeds 42,43 --format tsv 2> "$T/err.txt" > "$T/p2.tsv" || no "plan 2"
grep -Eq '^total +48 +144 +192 +96 +480 +1920$' "$T/err.txt" || no "summary on stderr"
[ "$(wc -l < "$T/p2.tsv")" = 1920 ] || no "1920 jobs"
# Nesting: set, then method, then seed (innermost).
head -4 "$T/p2.tsv" | cut -f2 | tr '\n' ' ' | grep -q \
    "^anime/merge_2/character_1_clothing_1_1_seed42 anime/merge_2/character_1_clothing_1_2_seed43 anime/w-switch_2/character_1_clothing_1_1_seed42 anime/w-switch_2/character_1_clothing_1_2_seed43 $" \
    || no "nesting: $(head -4 "$T/p2.tsv" | cut -f2 | tr '\n' ' ')"
# ZHONG: one seed, set k takes noise draw k-1.
"$BIN" testbed plan --protocol zhong --methods switch --n 4 --format tsv -q > "$T/z.tsv" || no "zhong plan"
awk -F'\t' '$10 != $5 - 1 || $8 != 111 { bad = 1 } END { exit bad }' "$T/z.tsv" || no "zhong noise_skip"

# Shards partition the plan: index mod N == K-1.
for k in 1 2 3; do "$BIN" testbed plan --methods merge,w-switch --seeds 42,43 --format tsv -q --shard $k/3; done \
    | sort -n > "$T/shards.tsv"
sort -n "$T/p2.tsv" | cmp -s - "$T/shards.tsv" || no "shards do not partition the plan"
"$BIN" testbed plan --methods merge --seeds 42 --format tsv -q --shard 2/3 | awk -F'\t' '$1 % 3 != 1 { bad = 1 } END { exit bad }' \
    || no "shard 2/3 has jobs with index mod 3 != 1"
"$BIN" testbed plan --summary --limit 10 --shard 2/4 | grep -q "shard 2/4: 3 jobs" || no "shard summary"

# A custom definition.
mkdir -p "$T/tb"
cat > "$T/tb/testbed.json" <<'EOF'
{"format_version": 1, "name": "mini", "subsets": {"toy": {"lora_info": "toy.json", "base_model": "tiny",
 "vae": null, "width": 64, "height": 64, "steps": 2, "cfg": 5, "scheduler": "dpm++2m",
 "timestep_spacing": null, "lora_scale": 1, "switch_steps": 2, "tail_steps": 1, "base_prompt": "a photo",
 "negative_prompt": "blurry"}}, "protocols": {"one": {"seeds": [5], "stream": false}},
 "default_protocol": "one", "n_values": [2]}
EOF
cat > "$T/tb/toy.json" <<'EOF'
{"character": [{"id": "character_1", "name": "A", "trigger": ["alice"]}],
 "hat": [{"id": "hat_1", "name": "H", "trigger": ["red hat"]}, {"id": "hat_2", "name": "G", "trigger": ["top hat"]}]}
EOF
"$BIN" testbed plan --testbed-dir "$T/tb" --methods merge --format tsv -q > "$T/toy.tsv" || no "custom testbed"
[ "$(cut -f2 "$T/toy.tsv" | tr '\n' ' ')" = "toy/merge_2/character_1_hat_1_1_seed5 toy/merge_2/character_1_hat_2_1_seed5 " ] \
    || no "custom plan: $(cut -f2 "$T/toy.tsv" | tr '\n' ' ')"
cut -f11 "$T/toy.tsv" | head -1 | grep -qx "a photo, alice, red hat" || no "custom prompt"
echo '{"character": [' > "$T/tb/toy.json"
"$BIN" testbed plan --testbed-dir "$T/tb" -q > /dev/null 2> "$T/err.txt" && no "broken definition accepted"
grep -q "toy.json: not valid JSON" "$T/err.txt" || no "broken definition message: $(cat "$T/err.txt")"

# Bad flags: exit status 2 and a message naming the flag.
expect2() {
    "$BIN" "$@" > /dev/null 2> "$T/err.txt"
    rc=$?
    [ $rc = 2 ] || no "'$*' exited $rc, expected 2"
}
expect2 testbed plan --subset cartoon;   grep -q -- "--subset: unknown subset 'cartoon'" "$T/err.txt" || no "subset message"
expect2 testbed plan --methods blend;    grep -q -- "--methods" "$T/err.txt" || no "methods message"
expect2 testbed plan --seeds 4x;         grep -q -- "--seeds" "$T/err.txt" || no "seeds message"
expect2 testbed plan --shard 0/2;        grep -q -- "--shard" "$T/err.txt" || no "shard message"
expect2 testbed plan --protocol nope;    grep -q -- "--protocol" "$T/err.txt" || no "protocol message"
expect2 testbed plan --format xml
expect2 testbed run --no-lora --out "$T/x"; grep -q -- "--model is required" "$T/err.txt" || no "run without --model"
expect2 testbed run --model x --out "$T/x"; grep -q -- "--lora-dir is required" "$T/err.txt" || no "run without --lora-dir"
expect2 testbed frobnicate
"$BIN" testbed run --model /nonexistent --no-lora --out "$T/x" > /dev/null 2> "$T/err.txt" && no "missing model accepted"
grep -q "/nonexistent" "$T/err.txt" || no "missing model message"
expect2 testbed merge
[ $fail = 0 ] && echo "test_testbed_plan: ok"
exit $fail
