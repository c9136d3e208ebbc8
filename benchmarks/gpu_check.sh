#!/usr/bin/env bash
# The GPU check (issue "one way to do each thing"): Triton kernel tests compiled for
# CUDA, the kernels benchmark's GPU rows, FNO against neuraloperator on the GPU and a
# short FNO training, written with the device name to OUT (default
# benchmarks/results/gpu). About 5 minutes; see benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh [OUT]
#
# Uses $PYTHON (default: .venv/bin/python if present, else python3). On a machine
# without the project's venv, opflow is imported from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout 470 "$PYTHON" benchmarks/gpu_check.py "$@"
