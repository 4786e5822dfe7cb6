#!/usr/bin/env bash
# The checks a maintainer with a GPU box runs: demo figures on CUDA, the CUDA-only tests, the whole
# suite, and the bench on CUDA. Usage: bench/gpu_check.sh [OUTDIR]  (default: bench/results/gpu)
# Uses `python3` from PATH (or $PY) with torch (CUDA), transformers, accelerate, textual, gguf,
# bitsandbytes, pytest, pytest-asyncio, pytest-textual-snapshot and hypothesis importable, and
# swtui importable (pip install -e . or PYTHONPATH=$PWD). Each step is bounded; a failure is logged
# and the next step runs. Everything lands in OUTDIR/gpu_check.log (+ bench JSON).
set -u
cd "$(dirname "$0")/.."
OUT=${1:-bench/results/gpu}
PY=${PY:-python3}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
step() {  # step NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  echo "=== $name ($(date -u +%H:%M:%S))" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$secs" "$@" >>"$LOG" 2>&1
  echo "=== $name: exit $? in $((SECONDS - t0)) s" | tee -a "$LOG"
}
step "environment" 120 $PY -c "import torch, transformers, platform; print(platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'transformers', transformers.__version__)"
step "scan (demo, cuda, default dtype)" 240 $PY -m swtui scan --device cuda --json
step "scan --stream (demo, cuda: one decoder layer at a time, pinned reads)" 300 $PY -m swtui scan --device cuda --stream --json
step "write the 0.8B synthetic model (bench/big.py, cached)" 600 $PY bench/big.py write 1b
BIG=$($PY bench/big.py write 1b 2>/dev/null | tail -1 | $PY -c "import json, sys; print(json.load(sys.stdin)['folder'])")
step "scan --stream (0.8B synthetic, cuda)" 600 $PY -m swtui scan --device cuda --stream --json "$BIG"
step "ablate --prune 11,507,1229 --restore-sa" 180 $PY -m swtui ablate --device cuda --prune 11,507,1229 --restore-sa --json
step "ablate --scale 11,507,1229=10" 180 $PY -m swtui ablate --device cuda --scale 11,507,1229=10 --json
step "quant RTN W4 per tensor, naive" 180 $PY -m swtui quant --device cuda --method rtn --bits 4 --group tensor --json --max-new-tokens 8
step "quant RTN W4 per tensor, clip z9 + keep SW" 180 $PY -m swtui quant --device cuda --method rtn --bits 4 --group tensor --clip-z 9 --keep-super-weights --json --max-new-tokens 8
step "quant bnb NF4 + keep SW" 180 $PY -m swtui quant --device cuda --method bnb-nf4 --keep-super-weights --json --max-new-tokens 8
step "CUDA-only tests" 300 $PY -m pytest -q -p no:cacheprovider tests/core/test_cuda.py -rs
step "the whole suite (CUDA visible)" 420 $PY -m pytest -q -p no:cacheprovider -x --durations=5
step "bench --device cuda" 420 $PY bench/run.py --device cuda
cp bench/results/latest.json "$OUT/bench_cuda.json" 2>/dev/null
echo "log: $LOG"
