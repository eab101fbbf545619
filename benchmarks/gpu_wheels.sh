#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what benchmarks/gpu.sh installs on a GPU machine without network:
# advx and the plugins it runs, built from this tree, and the peers it compares against.
#   bash benchmarks/gpu_wheels.sh    # then carry .whl and run ADVX_GPU_INSTALL=1 bash benchmarks/gpu.sh OUT
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl . plugins/zoo plugins/attacks plugins/counteract
python3 -m pip download -q --no-deps -d .whl pyautoattack==0.2.0 torchattacks==3.5.1
rm -rf build plugins/*/build  # setuptools leaves its build folders behind
ls -la .whl
