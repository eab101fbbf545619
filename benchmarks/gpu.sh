#!/usr/bin/env bash
# One-call GPU check (issue #34): the quickstart on CUDA, AutoAttack by advx vs the reference
# (pyautoattack) vs torchattacks, PGD and APGD in fp32 and bf16 against torchattacks and the
# physical limit, and EOT draws per pass. No network: advx installs from this tree without its
# dependencies (the CUDA image has torch, pluggy, attrs, click, h5py, tqdm, scikit-learn); the
# peers travel as wheels in .whl/ (see benchmarks/README or the device tool's notes).
#
#   bash benchmarks/gpu.sh OUTDIR          # on the GPU machine (OUTDIR: where the JSON goes)
#   ADVX_GPU_TINY=1 bash benchmarks/gpu.sh OUTDIR   # the same steps on a CPU at tiny sizes (the suite runs this)
#
# Each step has its own time limit, so the whole script ends within about 8 minutes; a step
# that fails or times out is recorded in OUTDIR/gpu_steps.json and the next one runs.
set -uo pipefail
OUT=${1:?usage: gpu.sh OUTDIR}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export ADVX_PROGRESS=0 PYTHONUNBUFFERED=1

if [ -n "${ADVX_GPU_INSTALL:-}" ]; then  # the bare GPU machine: peers from wheels, advx from this tree
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . -e plugins/zoo -e plugins/attacks \
    -e plugins/counteract || exit 3
fi

if [ -n "${ADVX_GPU_TINY:-}" ]; then
  DEV=cpu; AA=(--n 4 --eps 2/255 --steps 2 --queries 10 --batch 4)
  ATK=(--n 32 --batch 32 --pairs 1 --min-seconds 0 --quick); EOT=(--n 16 --eot 4 --steps 2 --pairs 1)
  QS=(--config tests/data/quickstart_tiny.toml)
  T_QS=120; T_AA=120; T_ATK=120; T_EOT=60
else
  DEV=cuda; AA=(--n 1000 --eps 2/255 --batch 1000)
  ATK=(--model resnet18 --random --n 4096 --batch 1024 --pairs 3 --quick); EOT=(--n 4096 --eot 20 --pairs 3)
  QS=()
  T_QS=100; T_AA=240; T_ATK=60; T_EOT=45
fi

STEPS="$OUT/gpu_steps.json"
echo "{" > "$STEPS"
step() {  # step NAME LIMIT_S CMD...: run, time, record rc and seconds
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local t1=$(date +%s.%N)
  printf '  "%s": {"rc": %d, "seconds": %.1f, "limit_s": %d},\n' "$name" "$rc" "$(echo "$t1 - $t0" | bc)" "$limit" >> "$STEPS"
  echo "== $name rc=$rc"; tail -n 25 "$OUT/$name.log"
}

$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
step quickstart "$T_QS" $PY benchmarks/quickstart.py "${QS[@]}" --device $DEV --out "$OUT/quickstart_gpu.json"
step autoattack "$T_AA" $PY benchmarks/autoattack_reference.py "${AA[@]}" --device $DEV --out "$OUT/autoattack_reference_gpu.json"
step attacks_fp32 "$T_ATK" $PY benchmarks/attacks.py "${ATK[@]}" --device $DEV --attacks PGD-10,APGD-20 --skip art \
  --out "$OUT/attacks_gpu_fp32.json"
step attacks_bf16 "$T_ATK" $PY benchmarks/attacks.py "${ATK[@]}" --device $DEV --attacks PGD-10,APGD-20 --skip art \
  --precision bf16 --channels-last --out "$OUT/attacks_gpu_bf16.json"
step eot "$T_EOT" $PY benchmarks/eot_batching.py "${EOT[@]}" --device $DEV --out "$OUT/eot_batching_gpu.json"
echo '  "done": true' >> "$STEPS"; echo "}" >> "$STEPS"
cat "$STEPS"
