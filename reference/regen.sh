#!/bin/sh
# Regenerate every golden file under tests/fixtures/ with the pinned Python
# reference stack (reference/requirements.txt). Order matters: the tiny
# models come first, everything built on them after.
set -eu
cd "$(dirname "$0")"
PY=${PY:-/opt/lmxref/bin/python3}
export OMP_NUM_THREADS=2
for g in gen_models gen_tokenizer gen_sched gen_ops gen_ops_gemm gen_io gen_pipeline \
         gen_lora gen_compose gen_testbed; do
    if [ -f "$g.py" ]; then
        echo "== $g"
        "$PY" "$g.py"
    fi
done
