#!/bin/sh
# Every loramix command shown in README.md and docs/*.md is either run here
# on the bundled tiny model and LoRAs (exit 0 required) or listed as skipped
# with the reason. Commands are the lines of fenced code blocks (any but
# python, c, yaml, json) and of indented blocks that start with `loramix `,
# `./build/loramix ` or `build/loramix ` (after an optional `$ `), joined over
# trailing backslashes, comments after `  #` dropped.
#
# The table below is the reviewed list: for each doc command, how it runs.
#   F <doc file>
#   C <the command as the doc shows it, whitespace collapsed, "loramix ...">
#   A run                    run it as written
#   A run: <command>         run this instead (placeholders -> bundled files,
#                            small sizes/steps); say what changed in the doc
#   A skip: <reason>
# A doc command missing from the table, or a table entry whose command no
# doc shows any more, fails the test: the list cannot rot.
# Commands run in a scratch folder where tests/ and data/ point at the
# repository's, with `loramix` on PATH being the binary under test.
set -u
BIN=${1:-build/loramix}
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
SRC=$(pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
mkdir -p "$T/bin" "$T/w"
ln -s "$BIN" "$T/bin/loramix"
ln -s "$SRC/tests" "$T/w/tests"
ln -s "$SRC/data" "$T/w/data"

TINY="-m tests/fixtures/models/tiny-sd -W 64 -H 64"
C=tests/fixtures/compose

cat >"$T/table" <<TABLE
F README.md
C loramix generate -m /path/to/sd15-model -p "a red fox in the snow" -o fox.png
A run: loramix generate $TINY --steps 2 -p "a red fox in the snow" -o fox.png

F README.md
C loramix generate --help
A run

F README.md
C loramix inspect MODEL_OR_LORA
A run: loramix inspect tests/fixtures/models/tiny-sd && loramix inspect tests/fixtures/lora/char_kohya.safetensors

F README.md
C loramix lora inspect my_lora.safetensors
A run: loramix lora inspect tests/fixtures/lora/char_kohya.safetensors

F README.md
C loramix generate -m sd15/ -p "a red fox" --scheduler dpm++2m --steps 25 --seed 42 -o fox.png
A run: loramix generate $TINY -p "a red fox" --scheduler dpm++2m --steps 3 --seed 42 -o fox.png

F README.md
C loramix generate -m realisticVision.safetensors --vae sd-vae-ft-mse/ -W 768 -H 1024 -p "RAW photo, iu1, long straight black hair, lib_bg, library bookshelf" --lora-scale 0.8 --method w-switch --lora iu.safetensors --category character --trigger "iu1, long straight black hair" --lora library.safetensors --category background --trigger "lib_bg, library bookshelf"
A run: loramix generate $TINY --steps 6 -p "RAW photo, iu1, long straight black hair, lib_bg, library bookshelf" --lora-scale 0.8 --method w-switch --lora $C/character_1.safetensors --category character --trigger "iu1, long straight black hair" --lora $C/style_1.safetensors --category background --trigger "lib_bg, library bookshelf" -o w.png

F README.md
C loramix weights ...
A run: loramix weights -m tests/fixtures/models/tiny-sd -p "RAW photo, iu1, film grain" --lora $C/character_1.safetensors --category character --trigger iu1 --lora $C/style_1.safetensors --category style --trigger "film grain" --weighting paw

F README.md
C loramix testbed plan --subset both --summary
A run

F README.md
C loramix testbed run --model ... --lora-dir ComposLoRA/lora --out results --shard 1/8
A skip: needs an SD1.5 checkpoint and the ComposLoRA LoRA files (docs/testbed.md's tiny smoke run is run below)

F docs/composition.md
C loramix weights -m MODEL -p PROMPT --lora character_1.safetensors --category character --trigger iu1 --trigger "long straight black hair" --lora style_1.safetensors --category style --trigger "film grain" --weighting paw
A run: loramix weights -m tests/fixtures/models/tiny-sd -p "RAW photo, iu1, long straight black hair, film grain" --lora $C/character_1.safetensors --category character --trigger iu1 --trigger "long straight black hair" --lora $C/style_1.safetensors --category style --trigger "film grain" --weighting paw

F docs/lora.md
C loramix lora inspect --model tests/fixtures/models/tiny-sd tests/fixtures/lora/char_kohya.safetensors
A run

F docs/testbed.md
C loramix testbed plan --subset reality --methods merge,w-switch | head
A run

F docs/testbed.md
C loramix testbed run --model tests/fixtures/models/tiny-sd --no-lora --steps 2 -W 64 -H 64 --limit 6 --out /tmp/tb
A run: loramix testbed run --model tests/fixtures/models/tiny-sd --no-lora --steps 2 -W 64 -H 64 --limit 6 --out results

F README.md
C loramix testbed merge --out results
A run

F docs/testbed.md
C loramix testbed run --subset reality --methods all --model models/Realistic_Vision_V5.1_noVAE --vae models/sd-vae-ft-mse --lora-dir ComposLoRA/lora --out runs/reality
A skip: needs Realistic Vision V5.1, sd-vae-ft-mse and the ComposLoRA LoRA files (7,200 SD1.5 images)

F docs/testbed.md
C loramix testbed merge --out runs/reality
A skip: merges the output of the skipped WPAPER run above (README's merge runs on the tiny run)

F docs/testbed.md
C loramix testbed run --model [SUBSET=]PATH [--vae [SUBSET=]PATH] --lora-dir DIR --out DIR
A skip: a synopsis, not a command

F docs/testbed.md
C loramix testbed merge --out DIR [--out DIR2 …] [--plan FILE | selection flags] [--index FILE] [--verify]
A skip: a synopsis, not a command

F docs/testbed.md
C loramix testbed run --subset reality --methods all --model /shared/models/Realistic_Vision_V5.1_noVAE --vae /shared/models/sd-vae-ft-mse --lora-dir /shared/ComposLoRA/lora --out /shared/runs/composlora-reality --shard "\${SLURM_ARRAY_TASK_ID}/\${SHARDS}" --threads "\${SLURM_CPUS_PER_TASK}"
A skip: a Slurm job script (cluster paths, SD1.5 checkpoint, ComposLoRA files)
TABLE

# The doc commands: "file<TAB>command".
for f in README.md docs/*.md; do
    awk -v F="$f" '
    function emit(c) {
        sub(/^[ \t]+/, "", c); sub(/^\$ /, "", c); sub(/^exec /, "", c)
        sub(/^(\.\/)?build\/loramix /, "loramix ", c)
        if (c !~ /^loramix /) return
        sub(/[ \t]+#[^"]*$/, "", c)           # a trailing comment
        gsub(/[ \t]+/, " ", c); sub(/ $/, "", c)
        print F "\t" c
    }
    /^```/ { if (!fence) { fence = 1; lang = substr($0, 4); skip = (lang ~ /^(python|c|yaml|json)/) } else fence = 0; next }
    {
        line = $0
        inblock = (fence && !skip) || (!fence && line ~ /^    /)
        if (cont != "") {
            if (line ~ /\\$/) { sub(/\\$/, "", line); cont = cont " " line; next }
            emit(cont " " line); cont = ""; next
        }
        if (!inblock) next
        t = line; sub(/^[ \t]+/, "", t); sub(/^\$ /, "", t); sub(/^exec /, "", t)
        if (t !~ /^(\.\/)?(build\/)?loramix /) next
        if (line ~ /\\$/) { sub(/\\$/, "", line); cont = line; next }
        emit(line)
    }' "$f"
done >"$T/docs"

# The table as "file<TAB>command<TAB>action".
awk '/^F /{f=substr($0,3)} /^C /{c=substr($0,3)} /^A /{print f "\t" c "\t" substr($0,3)}' "$T/table" >"$T/listed"

while IFS='	' read -r f c; do
    if ! cut -f1,2 "$T/listed" | grep -qxF "$f	$c"; then
        echo "FAIL: $f shows a command this test neither runs nor skips; add it to the table:"
        echo "    C $c"
        fail=1
    fi
done <"$T/docs"

n_run=0 n_skip=0
t0=$(date +%s)
while IFS='	' read -r f c a; do
    if ! grep -qxF "$f	$c" "$T/docs"; then
        echo "FAIL: the table lists a command $f no longer shows (update the table):"
        echo "    C $c"
        fail=1
        continue
    fi
    case $a in
    skip:*) n_skip=$((n_skip + 1)); echo "skip  $f: $c"; echo "      (${a#skip: })"; continue ;;
    run) cmd=$c ;;
    run:*) cmd=${a#run: } ;;
    *) echo "FAIL: bad action '$a' for $f: $c"; fail=1; continue ;;
    esac
    n_run=$((n_run + 1))
    echo "run   $f: $cmd"
    rm -f "$T/w"/*.png # each example as a user runs it: no image from an earlier one
    (cd "$T/w" && PATH="$T/bin:$PATH" timeout 120 sh -c "$cmd" </dev/null >"$T/out" 2>"$T/err")
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAIL: exit $rc: $cmd"
        tail -5 "$T/err" | sed 's/^/    | /'
        fail=1
    fi
done <"$T/listed"
echo "$n_run run, $n_skip skipped, $(($(date +%s) - t0)) s"
[ $fail = 0 ] && echo "test_docs_commands: ok"
