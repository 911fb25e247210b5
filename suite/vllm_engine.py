"""vLLM generation colocated with the trainer on the same GPUs (optional extra ``rlrepro[gpu]``).

The approach of TRL's colocate mode (``vllm_mode="colocate"`` in ``GRPOTrainer``), written for this trainer:

- the engine lives in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``); under torchrun vLLM joins the
  launcher's world (``distributed_executor_backend="external_launcher"``), so ``tensor_parallel_size`` ranks share
  one engine's shards;
- with ``enable_sleep_mode`` it starts asleep and sleeps during every update (weights offloaded, KV cache
  dropped: ``sleep(level=1)``); :meth:`generate` wakes the weights, pushes pending weights, wakes the KV cache,
  generates, and sleeps again;
- weights are pushed after each update one tensor at a time, each gathered from its FSDP shards
  (``DTensor.full_tensor``, a collective every rank joins in the same order) and handed to the vLLM model's
  ``load_weights``; the prefix cache is reset, since cached prompts were computed by the old weights;
- the per-call seed (``SamplingParams.seed``: the trainer's per-step, per-group seed) goes to vLLM's sampler, so a
  resumed run repeats its samples;
- a prompt that leaves no room for one generated token under ``max_model_len`` is not sent (vLLM would raise):
  it gets an empty completion and the caller ends that episode as truncated; the others get at most the room left.

Untested here: this machine has no GPU and no vLLM. tests/test_distributed.py checks the call order, seeds and
truncation against a stub ``vllm`` module.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import torch

from .rollout import SamplingParams, cut_at_stop


class VLLMEngine:
    def __init__(self, model_path: str, tokenizer, seed: int = 0, gpu_memory_utilization: float = 0.3,
                 max_model_len: int = 4096, tensor_parallel_size: int = 1, enable_sleep_mode: bool = False):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.tokenizer, self.max_model_len = tokenizer, max_model_len
        self.sleep_mode = enable_sleep_mode
        kwargs = dict(model=model_path, dtype="bfloat16", seed=seed, enable_prefix_caching=True,
                      gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                      tensor_parallel_size=tensor_parallel_size, enable_sleep_mode=enable_sleep_mode)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            kwargs["distributed_executor_backend"] = "external_launcher"  # join torchrun's world
        self.llm = LLM(**kwargs)
        self.asleep = False
        if self.sleep_mode:
            self.sleep()

    # -- memory ----------------------------------------------------------------
    def sleep(self) -> None:
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)  # weights to CPU memory, KV cache freed
            self.asleep = True

    def wake(self, tags: list[str] | None = None) -> None:
        if self.sleep_mode and self.asleep:
            self.llm.wake_up(tags=tags) if tags else self.llm.wake_up()
            self.asleep = tags is not None and "kv_cache" not in tags

    # -- weights ---------------------------------------------------------------
    def _model(self):
        """The in-process model (TRL's colocate path); None where this vLLM hides it (then ``LLM.apply_model``)."""
        try:
            worker = self.llm.llm_engine.model_executor.driver_worker
            return getattr(worker, "worker", worker).model_runner.model
        except AttributeError:
            return None

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        model = self._model()
        for name, tensor in weights:  # one tensor at a time: no second full copy of the model
            if model is not None:
                model.load_weights([(name, tensor)])
            else:
                self.llm.apply_model(lambda m, item=(name, tensor): m.load_weights([item]))
        self.llm.reset_prefix_cache()

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Push the policy's current weights (gathered from FSDP shards one tensor at a time) into vLLM."""
        from .distributed import iter_full_tensors

        was_asleep = self.asleep
        if was_asleep:
            self.llm.wake_up(tags=["weights"])  # the weights must be on the GPU to be overwritten
        self.load_weights(iter_full_tensors(model))
        if was_asleep:
            self.llm.sleep(level=1)

    # -- generation ------------------------------------------------------------
    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[int]]:
        """``params.n`` completions per prompt. With ``params.seed`` the i-th prompt's request is seeded ``seed + i``
        (identical prompts in one call still get different samples)."""
        return self.generate_runs([(list(prompts), params.seed)], params)[0]

    def generate_runs(self, runs: Sequence[tuple[Sequence[list[int]], int | None]],
                      params: SamplingParams) -> list[list[list[int]]]:
        """Several seeded calls in one ``LLM.generate``: per run (prompts, seed) its completions, as :meth:`generate`
        would return them (the trainer's prompt groups, each with its own seed, batched together)."""
        from vllm import SamplingParams as VSP
        from vllm.inputs import TokensPrompt

        outs = [[[] for _ in range(len(prompts) * params.n)] for prompts, _ in runs]
        where, requests, sampling = [], [], []
        for r, (prompts, seed) in enumerate(runs):
            for i, prompt in enumerate(prompts):
                room = self.max_model_len - len(prompt)
                if room < 1:  # no room for one new token: not sent, an empty completion (the episode ends truncated)
                    continue
                where.append((r, i))
                requests.append(TokensPrompt(prompt_token_ids=list(prompt)))
                sampling.append(VSP(n=params.n, temperature=0.0 if params.greedy else params.temperature,
                                    top_p=1.0 if params.greedy else params.top_p,
                                    max_tokens=min(params.max_new_tokens, room),
                                    seed=None if seed is None else seed + i,
                                    stop=list(params.stop) or None, include_stop_str_in_output=True))
        if not requests:
            return outs
        self.wake()
        try:
            outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        finally:
            self.sleep()
        for (r, i), o in zip(where, outputs):
            for j, c in enumerate(o.outputs):
                outs[r][i * params.n + j] = cut_at_stop(list(c.token_ids), params.stop, self.tokenizer)
        return outs
