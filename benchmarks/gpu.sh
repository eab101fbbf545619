#!/usr/bin/env bash
# One-call GPU check (issue #34): the quickstart on CUDA, AutoAttack by advx vs the reference
# (pyautoattack) vs torchattacks, PGD and APGD in fp32 and bf16 against torchattacks and the
# physical limit, and EOT draws per pass. No network: advx installs from this tree without its
# dependencies (the CUDA image has torch, pluggy, attrs, click, h5py, tqdm, scikit-learn); the
# peers travel as wheels in .whl/, which benchmarks/gpu_wheels.sh fills (advx built from this tree).
#
#   bash benchmarks/gpu.sh OUTDIR          # on the GPU machine (OUTDIR: where the JSON goes)
#   ADVX_GPU_TINY=1 bash benchmarks/gpu.sh OUTDIR   # the same steps on a CPU at tiny sizes (the suite runs this)
#
# ADVX_GPU_ONLY="autoattack attacks_fp32" runs only the steps named.
# Each step has its own time limit; the limits sum to 530 s, so the whole script ends within the
# 600 s one device command may take, with a margin for start-up. A step that fails or times out
# is recorded in OUTDIR/gpu_steps.json and the next one runs. One id (RUN_ID) stamps the step log,
# every log and every JSON this call writes, so what is committed comes from one call.
set -uo pipefail
OUT=${1:?usage: gpu.sh OUTDIR}
LOGS=${ADVX_GPU_LOGS:-$OUT/logs}  # the device tool returns at most 8 files: keep logs elsewhere there
mkdir -p "$OUT" "$LOGS"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export ADVX_PROGRESS=0 PYTHONUNBUFFERED=1

if [ -n "${ADVX_GPU_INSTALL:-}" ]; then  # the bare GPU machine: .whl/ from benchmarks/gpu_wheels.sh
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

if [ -n "${ADVX_GPU_TINY:-}" ]; then
  DEV=cpu; AA=(--n 2 --eps 2/255 --steps 1 --queries 2 --targets 1 --batch 2)
  ATK=(--n 8 --batch 8 --pairs 1 --min-seconds 0 --quick --attacks PGD-10 --random)
  EOT=(--n 8 --eot 2 --steps 1 --pairs 1 --epochs 1)
  QS=(--config tests/data/quickstart_tiny.toml)
  T_QS=120; T_AA=120; T_ATK=120; T_EOT=60
else
  DEV=cuda; AA=(--n 1000 --eps 2/255 --batch 1000 --rounds 3)
  ATK=(--model resnet18 --random --n 4096 --batch 1024 --pairs 3 --min-seconds 2 --quick); EOT=(--n 4096 --eot 20 --pairs 3)
  QS=()
  T_QS=75; T_AA=270; T_ATK=75; T_EOT=35  # 75 + 270 + 75 + 75 + 35 = 530 s
fi
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)-$$

ONLY=" ${ADVX_GPU_ONLY:-quickstart autoattack attacks_fp32 attacks_bf16 eot} "  # a subset of the steps, by name
STEPS="$OUT/gpu_steps.json"
printf '{\n  "run_id": "%s",\n' "$RUN_ID" > "$STEPS"
step() {  # step NAME LIMIT_S CMD...: run, time, record rc and seconds
  local name=$1 limit=$2; shift 2
  case "$ONLY" in *" $name "*) ;; *) echo "== $name skipped (ADVX_GPU_ONLY)"; return ;; esac
  local t0=$(date +%s%N)
  echo "run_id $RUN_ID" > "$LOGS/$name.log"
  timeout "$limit" "$@" >> "$LOGS/$name.log" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '  "%s": {"rc": %d, "seconds": %d.%03d, "limit_s": %d},\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) "$limit" >> "$STEPS"
  echo "== $name rc=$rc"; tail -n 25 "$LOGS/$name.log"
}

[ -n "${ADVX_GPU_TINY:-}" ] || $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
step quickstart "$T_QS" $PY benchmarks/quickstart.py "${QS[@]}" --device $DEV --out "$OUT/quickstart_gpu.json"
step autoattack "$T_AA" $PY benchmarks/autoattack_reference.py "${AA[@]}" --device $DEV --out "$OUT/autoattack_reference_gpu.json"
step attacks_fp32 "$T_ATK" $PY benchmarks/attacks.py --attacks PGD-10,APGD-20 "${ATK[@]}" --device $DEV --skip art \
  --out "$OUT/attacks_gpu_fp32.json"
step attacks_bf16 "$T_ATK" $PY benchmarks/attacks.py --attacks PGD-10,APGD-20 "${ATK[@]}" --device $DEV --skip art \
  --precision bf16 --channels-last --out "$OUT/attacks_gpu_bf16.json"
step eot "$T_EOT" $PY benchmarks/eot_batching.py "${EOT[@]}" --device $DEV --out "$OUT/eot_batching_gpu.json"
echo '  "done": true' >> "$STEPS"; echo "}" >> "$STEPS"
$PY - "$OUT" "$RUN_ID" <<'STAMP'
import json, pathlib, sys
for p in pathlib.Path(sys.argv[1]).glob("*.json"):  # every JSON of this call carries its id
    d = json.loads(p.read_text())
    if isinstance(d, dict):
        d["gpu_run_id"] = sys.argv[2]
        p.write_text(json.dumps(d, indent=1) + "\n")
STAMP
cat "$STEPS"
