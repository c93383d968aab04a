#!/usr/bin/env bash
# GPU validation run for one H100/H200 (designed to finish in under 8 minutes):
#   benchmarks/gpu_check.sh              # on the GPU machine; writes reports/<gpu>-example/
#   benchmarks/gpu_check.sh --dry-run    # on a CPU: every step with its CPU stand-ins
# Wheels brought along (no network there): put torchao-*.whl / transformer_engine*.whl in
# ./wheels (or MPBENCH_WHEELS=dir); they are installed with pip --no-index --no-deps.
# See benchmarks/gpu_check.py for the steps and --help for the options.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" benchmarks/gpu_check.py "$@"
