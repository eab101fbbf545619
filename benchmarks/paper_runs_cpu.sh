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
advx run examples/intelligent_mixup_fmnist.toml --set data.train_fraction=0.1 --set data.test_limit=200 \
  --set model.train.epochs=5 --set train.0.epochs=5 --set train.1.epochs=5 \
  --set attack.0.binary_search_steps=2 --set attack.0.steps=20 --report-dir runs/intelligent_mixup_fmnist_report
# stored: plugins/fixer/results/fixer_fmnist
advx run examples/fixer_fmnist.toml --report-dir plugins/fixer/results/fixer_fmnist
