#!/bin/sh
# Two testbed runners on one output folder (tiny model, no LoRAs):
#  a. same shard: the second is refused at once (exit 1, a message naming the
#     folder, the shard and the holder's PID), so is a runner of an
#     overlapping shard (1/2 while 1/1 runs); with --wait it waits and then
#     finds nothing left; the first finishes with every job exactly once;
#  b. shards 1/2 and 2/2 at once: both finish, every job exactly once,
#     byte-identical to one runner, nothing recomputed;
#  c. a runner killed with kill -9 leaves no stale lock: the next one starts
#     at once and resumes;
#  d. the temp-file sweep keeps a temporary file whose writer (the PID in its
#     name) is alive and removes those of dead writers.
set -u
BIN=${1:-build/loramix}
T=$(mktemp -d)
LIVE=
trap '[ -n "$LIVE" ] && kill $LIVE 2>/dev/null; rm -rf "$T"' EXIT
fail=0
no() { echo "FAIL: $*"; fail=1; }
M=tests/fixtures/models/tiny-sd
JOBS=20
RUN="$BIN testbed run --model $M --no-lora --steps 3 -W 64 -H 64 --threads 1 --methods merge,composite -q"

pngs() { (cd "$1" && find . -name '*.png' | sort); }
same_images() { # same names and bytes in $1 and $2
    pngs "$1" > "$T/l1"
    pngs "$2" > "$T/l2"
    cmp -s "$T/l1" "$T/l2" || { no "$3: different image lists"; diff "$T/l1" "$T/l2" | head -5; return; }
    while read -r f; do cmp -s "$1/$f" "$2/$f" || no "$3: $f differs"; done < "$T/l1"
}
# every job of the plan "done" exactly once over all the folder's run logs
once() {
    cat "$1"/logs/*.jsonl 2>/dev/null | grep '"event":"done"' | sed 's/.*"job":"\([^"]*\)".*/\1/' | sort > "$T/done"
    [ "$(uniq "$T/done" | wc -l | tr -d ' ')" = $JOBS ] || no "$2: $(uniq "$T/done" | wc -l | tr -d ' ') jobs done, expected $JOBS"
    uniq -d "$T/done" > "$T/twice"
    [ -s "$T/twice" ] && no "$2: jobs computed twice: $(head -3 "$T/twice" | tr '\n' ' ')"
    find "$1" -name '*.tmp.*' | grep -q . && no "$2: temporary files left: $(find "$1" -name '*.tmp.*')"
}
# wait until the runner of shard $2 in folder $1 has started (its log says so; the lock is taken before)
started() {
    i=0
    while [ $i -lt 400 ] && ! grep -q '"event":"run_start"' "$1/logs/shard-$2.jsonl" 2>/dev/null; do
        sleep 0.02
        i=$((i + 1))
    done
}

$RUN --limit $JOBS --out "$T/ref" 2>/dev/null || no "reference run failed"

# a. The same shard twice.
$RUN --limit $JOBS --out "$T/a" 2> "$T/a1.txt" &
p1=$!
started "$T/a" 1-of-1
$RUN --limit $JOBS --out "$T/a" 2> "$T/a2.txt"
rc=$?
$RUN --limit $JOBS --out "$T/a" --shard 1/2 2> "$T/a3.txt"
rc3=$?
kill -0 $p1 2>/dev/null || echo "note: the first runner ended before the others started (slow machine?)"
[ $rc = 1 ] || no "a second runner of shard 1/1 exited $rc, expected 1 (refused)"
grep -q "loramix: error: $T/a: shard 1/1 is being run by another runner (pid $p1 on " "$T/a2.txt" \
    || no "refusal message: $(cat "$T/a2.txt")"
grep -q -- "--wait" "$T/a2.txt" || no "the refusal does not mention --wait"
[ $rc3 = 1 ] || no "a runner of the overlapping shard 1/2 exited $rc3, expected 1"
grep -q "another runner holds $T/a/.lock-shard-1-of-1 (pid $p1 on .*overlap those of shard 1/2" "$T/a3.txt" \
    || no "overlap message: $(cat "$T/a3.txt")"
wait $p1 || no "the first runner failed: $(cat "$T/a1.txt")"
same_images "$T/ref" "$T/a" "same shard twice"
once "$T/a" "same shard twice"

# a'. --wait: the second waits for the first, then has nothing left to do.
$RUN --limit $JOBS --out "$T/w" 2>/dev/null &
p1=$!
started "$T/w" 1-of-1
$RUN --limit $JOBS --out "$T/w" --wait 2> "$T/w2.txt" || no "the waiting runner failed: $(cat "$T/w2.txt")"
# (Whether the first process is still alive here is a race: it lets go of
# its lock before it exits. That the waiter ran after it is shown below: its
# run_start comes second and finds nothing pending.)
wait $p1 || no "the first runner (with a waiter) failed"
grep -q "shard 1/1 of $T/w is being run by another runner (pid $p1 .*); waiting for it" "$T/w2.txt" \
    || no "waiting message: $(cat "$T/w2.txt")"
[ "$(grep -c '"event":"run_start"' "$T/w/logs/shard-1-of-1.jsonl")" = 2 ] || no "--wait: two run_start events expected"
grep '"event":"run_start"' "$T/w/logs/shard-1-of-1.jsonl" | tail -1 | grep -q '"pending":0,' \
    || no "the waiting runner found jobs to do: $(grep run_start "$T/w/logs/shard-1-of-1.jsonl" | tail -1)"
same_images "$T/ref" "$T/w" "--wait"
once "$T/w" "--wait"

# b. Two shards at once in one folder.
$RUN --limit $JOBS --out "$T/s" --shard 1/2 2> "$T/s1.txt" &
p1=$!
$RUN --limit $JOBS --out "$T/s" --shard 2/2 2> "$T/s2.txt" &
p2=$!
wait $p1 || no "shard 1/2 failed: $(cat "$T/s1.txt")"
wait $p2 || no "shard 2/2 failed: $(cat "$T/s2.txt")"
same_images "$T/ref" "$T/s" "two shards at once"
once "$T/s" "two shards at once"
$BIN testbed merge --out "$T/s" 2> "$T/m.txt" || no "merge of the two shards: $(cat "$T/m.txt")"
grep -q "merge: $JOBS of $JOBS jobs complete, 0 missing" "$T/m.txt" || no "merge: $(cat "$T/m.txt")"
grep -q recomputed "$T/m.txt" && no "merge reports recomputed jobs: $(grep recomputed "$T/m.txt")"

# c. kill -9 leaves no stale lock.
$RUN --limit $JOBS --out "$T/c" 2>/dev/null &
p1=$!
started "$T/c" 1-of-1
i=0
while [ $i -lt 400 ] && ! grep -q '"event":"done"' "$T/c/logs/shard-1-of-1.jsonl" 2>/dev/null; do
    sleep 0.02
    i=$((i + 1))
done
kill -9 $p1
wait $p1 2>/dev/null
[ -e "$T/c/.lock-shard-1-of-1" ] || no "no lock file in $T/c"
grep -q "^pid $p1 on " "$T/c/.lock-shard-1-of-1" || no "lock file note: $(cat "$T/c/.lock-shard-1-of-1")"
$RUN --limit $JOBS --out "$T/c" 2> "$T/c2.txt" || no "the run after kill -9 failed: $(cat "$T/c2.txt")"
grep -q "another runner" "$T/c2.txt" && no "stale lock after kill -9: $(cat "$T/c2.txt")"
same_images "$T/ref" "$T/c" "killed and resumed"
once "$T/c" "killed and resumed"

# d. The sweep: a live writer's temporary file stays, a dead writer's goes.
sleep 60 &
LIVE=$!
sh -c 'exit 0' &
DEAD=$!
wait $DEAD
J=anime/merge_2/character_1_clothing_1_1_seed42
mkdir -p "$T/d/anime/merge_2"
echo x > "$T/d/$J.png.tmp.$LIVE.0"
echo x > "$T/d/$J.json.tmp.$LIVE"
echo x > "$T/d/$J.png.tmp.$DEAD.3"
echo x > "$T/d/$J.json.tmp.$DEAD"
$RUN --limit 2 --out "$T/d" 2> "$T/d.txt" || no "run with planted temporary files failed: $(cat "$T/d.txt")"
[ -e "$T/d/$J.png.tmp.$LIVE.0" ] && [ -e "$T/d/$J.json.tmp.$LIVE" ] \
    || no "the sweep removed a temporary file of a live writer (PID $LIVE)"
[ -e "$T/d/$J.png.tmp.$DEAD.3" ] || [ -e "$T/d/$J.json.tmp.$DEAD" ] \
    && no "the sweep kept a temporary file of a dead writer (PID $DEAD)"
cmp -s "$T/ref/$J.png" "$T/d/$J.png" || no "the job with planted temporary files"
kill $LIVE
wait $LIVE 2>/dev/null
LIVE=
$RUN --limit 2 --out "$T/d" 2>/dev/null || no "second run in $T/d failed"
find "$T/d" -name '*.tmp.*' | grep -q . && no "temporary files of a writer gone since: $(find "$T/d" -name '*.tmp.*')"

[ $fail = 0 ] && echo "test_testbed_concurrent: ok"
exit $fail
