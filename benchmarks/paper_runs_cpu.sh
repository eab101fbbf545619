#!/usr/bin/env bash
# The CPU-subset runs whose tables are in the plugin READMEs (2-core CPU, no GPU). Each line is
# the exact command; drop the --set overrides to run the full protocol on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export ADVX_PROGRESS=0
advx run examples/batchout_mnist.toml --set data.train_fraction=0.1 --set data.test_limit=1000 \
  --set model.train.epochs=10 --report-dir runs/batchout_mnist_report
advx run examples/mixup_at_mnist.toml --set data.train_fraction=0.1 --set data.test_limit=1000 \
  --set model.train.epochs=10 --set model.train.step_size=7 --report-dir runs/mixup_at_mnist_report
# stored: plugins/counteract/results/counteract_fmnist (summary.json records this command)
advx run examples/counteract_fmnist.toml --report-dir plugins/counteract/results/counteract_fmnist
# stored: plugins/intelligent-mixup/results/intelligent_mixup_fmnist (full training set, paper epochs)
advx run examples/intelligent_mixup_fmnist.toml --set data.test_limit=1000 --out runs/im_full.h5 \
  --report-dir plugins/intelligent-mixup/results/intelligent_mixup_fmnist
# stored: plugins/fixer/results/fixer_fmnist
advx run examples/fixer_fmnist.toml --report-dir plugins/fixer/results/fixer_fmnist
