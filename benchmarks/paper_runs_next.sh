#!/usr/bin/env bash
# The paper runs not stored yet, in the order they are wanted (issue #35): run in the background
# on an idle machine, `nohup bash benchmarks/paper_runs_next.sh > logs/next.log 2>&1 &`. Each advx
# run resumes where a killed one stopped (finished cells and trained models are kept), so the
# script can be started again after a session ends. When a run is stored, its command moves to
# benchmarks/paper_runs_cpu.sh (the list of what the READMEs are generated from) and leaves here.
set -euo pipefail
cd "$(dirname "$0")/.."
export ADVX_PROGRESS=0

# 1. training seeds 1 and 2 of paper 004's calibrated run (item 2), listed under "seeds" in its
#    claims file beside seed 0
advx run examples/counteract_fmnist.toml --set data.train_fraction=1.0 --set attack.0.eps=20/255 \
  --set attack.0.alpha=5/255 --set attack.0.label=PGD-10 --set attack.1.eps=20/255 --set attack.1.alpha=5/255 \
  --set 'attack.1.label=PGD-10 (targeted)' --set attack.2.eps=20/255 --set attack.2.label=Square-100 \
  --set experiment.seed=1 --out runs/counteract_fmnist_full_eps20_seed1.h5 \
  --report-dir plugins/counteract/results/counteract_fmnist_full_eps20_seed1
advx run examples/counteract_fmnist.toml --set data.train_fraction=1.0 --set attack.0.eps=20/255 \
  --set attack.0.alpha=5/255 --set attack.0.label=PGD-10 --set attack.1.eps=20/255 --set attack.1.alpha=5/255 \
  --set 'attack.1.label=PGD-10 (targeted)' --set attack.2.eps=20/255 --set attack.2.label=Square-100 \
  --set experiment.seed=2 --out runs/counteract_fmnist_full_eps20_seed2.h5 \
  --report-dir plugins/counteract/results/counteract_fmnist_full_eps20_seed2
