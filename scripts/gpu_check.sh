#!/usr/bin/env bash
# Issue 17's GPU check: one process, FSDP2 + gradient checkpointing + bf16 on randomly initialised models of
# SmolLM2-135M's and Llama-3.2-1B's shapes with HF generation on the GPU (step time, peak memory against
# `python -m suite plan`), then tiny-llama at fp32 on the GPU against the CPU path (same losses).
# Needs PyTorch and transformers only (no vLLM, no model hub); fits 8 minutes on one GPU.
#   bash scripts/gpu_check.sh                      # on a machine with a GPU
#   bash scripts/gpu_check.sh --device cpu --tiny  # the CPU parts (what the tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
export RLREPRO_CACHE="${RLREPRO_CACHE:-$(mktemp -d)}"  # tiny-llama is built here, not in the user's cache
exec timeout 480 python scripts/gpu_check.py "$@"
