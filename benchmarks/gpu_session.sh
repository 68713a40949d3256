#!/usr/bin/env bash
# One device session (a lent GPU machine, no network): bench_gpu.py, the GPU walkthrough's flagged cells at reduced
# size (benchmarks/gpu_walkthrough_params.py), and 00_model's #| cuda cells. Needs wheels in .whl/ for what the machine
# lacks: nbdev and its dependencies, and this package (python -m build --wheel -o .whl). Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, buildNanoGPT; print('torch', torch.__version__, 'transformers', transformers.__version__, 'buildNanoGPT', buildNanoGPT.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step() { local name=$1 secs=$2; shift 2; local t0=$SECONDS
  timeout "$secs" "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"; tail -n ${TAIL:-12} "$OUT/$name.txt"; }
TAIL=8 step bench_gpu ${BENCH_S:-150} python3 benchmarks/bench_gpu.py --steps 10 --warmup 3 --sides ours/eager ours/compiled hf/eager
TAIL=40 step walkthrough ${WALK_S:-330} python3 tools/rehearse.py nbs/04_gpu_walkthrough.ipynb benchmarks/gpu_walkthrough_params.py --cell-timeout 0 --verbose
step model_cuda_cells ${MODEL_S:-70} nbdev-test nbs/00_model.ipynb --flags cuda --do-print
cat "$OUT/summary.txt"
