"""lm-eval model ``rlrepro``: lm-eval's HF model with generation run by the trainer's rollout engine.

Everything but ``generate_until`` is lm-eval's ``hf`` model (:class:`lm_eval.models.huggingface.HFLM`): loading,
the chat template, tokenisation and truncation of contexts, and the log-likelihood requests. Generation goes
through :class:`suite.rollout.HFEngine`, the engine the trainer samples with:

- a KV cache that does not copy itself at every token (suite/kv_cache.py), read in place by SDPA;
- batches of ``generation_rows`` rows (``suite.evaluate``: 128 unless ``batch_size`` is larger): a decoding step
  reads every weight once, whatever the rows, so rows are cheap until the cache's reads dominate; a row that has
  ended leaves the batch (suite/rollout.py ``HFEngine._decode``);
- optionally, generation in bf16 where the CPU computes it natively (``bf16="auto"``); ``suite.evaluate``
  defaults to fp32, whose greedy answers equal lm-eval's ``hf`` (measured: results/bench/eval.md);
- one prefill per distinct prompt: a task's ``repeats: k`` reaches a model as k identical requests, which
  lm-eval's ``hf`` model prefills k times; here they become one prompt with k samples sharing its KV cache, and
  greedy repeats are decoded once and copied;
- sampling by the inverse-CDF draw (:class:`suite.rollout.InverseCDFSampler`) after the same logits warpers
  ``generate(do_sample=True)`` would apply (temperature, the model's top-k, top-p), so the samples follow the
  distribution ``hf`` samples from;
- prompts sorted by length as lm-eval's ``hf`` model sorts them (longest first), batches of ``batch_size`` rows;
- stop sequences honoured as ``hf`` does: generation ends at EOS or a stop string, and the text is cut before
  the first stop string.

Greedy outputs are token-identical to ``hf``'s on the same prompts in the same precision (``bf16: false``)
(tests/test_lm_backend.py); decoding settings the engine does not implement (beam search, repetition
penalty, ...) fall back to ``hf``'s own ``generate_until`` for those requests, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm.auto import tqdm

from .rollout import HFEngine, SamplingParams

log = logging.getLogger(__name__)

NAME = "rlrepro"
# rows per generation batch unless told otherwise: a decoding step reads every weight once, whatever its rows, so
# a row costs less in a larger batch (results/bench/decode.md); 128 rows of 256 new tokens hold 2-3 GB of fp32
# KV cache for SmolLM2-135M
GENERATION_ROWS = 128
# generation kwargs the engine implements; a request with any other falls back to lm-eval's hf generation
SUPPORTED_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_p", "top_k"}


@register_model(NAME)
class RolloutLM(HFLM):
    """lm-eval's ``hf`` model whose ``generate_until`` runs on :class:`suite.rollout.HFEngine`."""

    def __init__(self, *args, bf16: bool | str = False, generation_rows: int | None = None, **kwargs):
        """``bf16``: generate from a bf16 copy of the weights (True), from the model as lm-eval loaded it (False,
        its dtype), or ``"auto"``: bf16 where the device computes it natively (suite/precision.py). Log-likelihood
        requests always use the loaded model. ``generation_rows``: rows per generation batch (default
        ``batch_size``); decoding reads every weight once per token, so more rows per batch cost little more."""
        super().__init__(*args, **kwargs)
        from .precision import resolve_bf16

        self.generation_bf16 = resolve_bf16(bf16, self.model.device) and self.model.dtype != torch.bfloat16
        rows = int(generation_rows or self.batch_size)
        self.engine = HFEngine(self.model, self.tokenizer, batch_size=rows, bf16=self.generation_bf16)

    def _sampling_defaults(self) -> dict:
        """The top-k / top-p that ``generate(do_sample=True)`` would add from the model's generation config and
        transformers' defaults (transformers samples from the top 50 tokens unless told otherwise)."""
        try:
            config, _ = self.model._prepare_generation_config(None, do_sample=True)
            return {"top_k": config.top_k or 0, "top_p": 1.0 if config.top_p is None else config.top_p}
        except Exception:  # noqa: BLE001 (another transformers version: its documented defaults)
            config = self.model.generation_config
            return {"top_k": 50 if config.top_k is None else config.top_k,
                    "top_p": 1.0 if config.top_p is None else config.top_p}

    def params_for(self, gen_kwargs: dict) -> SamplingParams | None:
        """The engine's sampling parameters for one request's generation kwargs (None: not supported)."""
        if set(gen_kwargs) - SUPPORTED_KWARGS:
            return None
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=self.tok_decode(self.eot_token_id,
                                                                                      skip_special_tokens=False))
        greedy = not kwargs.get("do_sample") or float(kwargs.get("temperature") or 0.0) == 0.0
        defaults = self._sampling_defaults()
        return SamplingParams(
            max_new_tokens=int(kwargs["max_gen_toks"]), stop=tuple(until), greedy=greedy,
            temperature=float(kwargs.get("temperature") or 1.0),
            top_k=int(kwargs.get("top_k", defaults["top_k"]) or 0),
            top_p=float(kwargs.get("top_p", defaults["top_p"])),
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results: list[str | None] = [None] * len(requests)
        by_kwargs: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_kwargs.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(i)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="generate_until (rlrepro)")
        for indices in by_kwargs.values():
            gen_kwargs = requests[indices[0]].args[1]
            params = self.params_for(gen_kwargs)
            if params is None:
                log.warning("generation kwargs %s are not implemented by the rlrepro engine; "
                            "these %d requests run through lm-eval's hf generation", sorted(gen_kwargs), len(indices))
                for i, text in zip(indices, super().generate_until([requests[i] for i in indices], True)):
                    results[i] = text
                bar.update(len(indices))
                continue
            for i, text in self._generate_group([requests[i].args[0] for i in indices], params, gen_kwargs):
                results[indices[i]] = text
                bar.update(1)
        bar.close()
        return results  # type: ignore[return-value]

    def _generate_group(self, contexts: list[str], params: SamplingParams, gen_kwargs: dict):
        """(index into ``contexts``, text) for requests of one generation setting: identical contexts (repeats)
        share one prompt, prompts go longest first, as lm-eval's hf model orders them."""
        copies: dict[str, list[int]] = {}
        for i, context in enumerate(contexts):
            copies.setdefault(context, []).append(i)
        max_ctx_len = self.max_length - params.max_new_tokens
        if max_ctx_len <= 0:
            raise ValueError(f"max_gen_toks = {params.max_new_tokens} leaves no room for a prompt in the model's "
                             f"{self.max_length} tokens; lower generation_kwargs.max_gen_toks")
        encoded = {c: self._encode(c, max_ctx_len) for c in copies}
        # by number of samples (a group shares its prefill), then longest first as lm-eval sorts
        order = sorted(copies, key=lambda c: (len(copies[c]), -len(encoded[c]), c))
        start = 0
        while start < len(order):
            n = len(copies[order[start]])
            end = start
            while end < len(order) and len(copies[order[end]]) == n:
                end += 1
            same_n = order[start:end]
            samples = 1 if params.greedy else n  # greedy repeats are one decoding, copied
            run = dataclasses.replace(params, n=samples)
            outputs = self.engine.generate([encoded[c] for c in same_n], run)
            for k, context in enumerate(same_n):
                rows = outputs[k * samples:(k + 1) * samples]
                for j, index in enumerate(copies[context]):
                    text = self.tok_decode(rows[j % samples])
                    yield index, postprocess_generated_text(text, list(params.stop), None)
            start = end

    def _encode(self, context: str, max_ctx_len: int) -> list[int]:
        """The context's token ids exactly as lm-eval's hf model encodes them for generation."""
        ids, mask = self.tok_batch_encode([context], left_truncate_len=max_ctx_len, truncation=self.truncation)
        return ids[0][mask[0].bool()].tolist()


def is_registered() -> bool:
    from lm_eval.api.registry import get_model

    return get_model(NAME) is RolloutLM

