#!/usr/bin/env bash
# Second device session: the index notebook's flagged cells (benchmarks/gpu_index_params.py) and 02_train's #| cuda
# cell (50 steps of the 124M preset on a local corpus prepared into nbs/edu_fineweb10B, where that cell looks).
set -u
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
step() { local name=$1 secs=$2; shift 2; local t0=$SECONDS
  timeout "$secs" "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"; tail -n ${TAIL:-12} "$OUT/$name.txt"; }
TAIL=15 step index ${INDEX_S:-180} python3 tools/rehearse.py nbs/index.ipynb benchmarks/gpu_index_params.py --cell-timeout 0 --verbose
python3 -c "
import json; from buildNanoGPT import data
with open('/tmp/plays.jsonl', 'w') as f: f.writelines(json.dumps({'text': d['text']}) + '\n' for d in data.shakespeare_docs())"
buildnanogpt-prep --source /tmp/plays.jsonl --data-dir nbs/edu_fineweb10B --shard-size 131072 --min-split-tokens 65537 --val-fraction 0.25 2>&1 | tail -2
TAIL=25 step train_cuda_cell ${TRAIN_S:-200} nbdev-test nbs/02_train.ipynb --flags cuda --do-print --verbose
cat "$OUT/summary.txt"
