"""Rollout engines and the container that carries rollouts to the update.

An engine turns prompt token ids into sampled completion token ids. Two engines
share the interface: :class:`HFEngine` (``model.generate`` on the policy itself,
the CPU path) and :class:`VLLMEngine` (vLLM on a GPU, weights pushed from the
policy after every update).

:class:`Rollouts` holds one trajectory per row: prompt ids, completion ids, a
0/1 mask of completion tokens that are trained (a multi-turn agent's observation
tokens are 0), per-token advantages, and optional recorded log-probs.
:func:`collate` lays rows out as ``[left-padded prompt | completion | right pad]``
so every completion starts at the same column.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch

from .kv_cache import preallocated_cache
from .losses import episode_row_weights
from .models import attention, cpu_attention


@dataclass
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # sample among the k most likely tokens (0: all); evaluation matches generate()'s default
    n: int = 1
    # Generation also ends once the decoded completion contains one of these strings (e.g. an agent's
    # "</search>"); the completion is cut after the token that completes it. Empty: stop at EOS only.
    stop: tuple[str, ...] = ()
    greedy: bool = False  # argmax decoding (evaluation); temperature and top_p are then ignored
    # the seed of this call's draws (vLLM: SamplingParams.seed); None: the engine's stream (HF: torch's global RNG,
    # which the trainer seeds per step, or per prompt group: Trainer.generate)
    seed: int | None = None


class GenerationEngine(Protocol):
    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[int]]:
        """Return ``len(prompts) * params.n`` completions (prompt-major order), each cut after EOS."""

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the engine sample from the policy's current weights."""


def cut_at_stop(ids: list[int], stop: Sequence[str], tokenizer) -> list[int]:
    """The shortest prefix of ``ids`` whose decoded text contains one of ``stop`` (all of ``ids`` if none does).

    Containment grows with the prefix, so the cut point is found by bisection over prefix lengths.
    """
    if not stop or not ids:
        return ids

    def hit(k: int) -> bool:
        text = tokenizer.decode(ids[:k])
        return any(s in text for s in stop)

    if not hit(len(ids)):
        return ids
    lo, hi = 1, len(ids)  # invariant: hit(hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if hit(mid):
            hi = mid
        else:
            lo = mid + 1
    return ids[:hi]


class StopOnText:
    """Whether a row's *generated* ids contain one of ``stop`` in their text (the engine's stop check per token).

    Only generated tokens count, as in lm-eval's ``hf`` model: transformers' own ``stop_strings`` also matches a
    stop string that begins in the prompt (a prompt ending in "\n" and a first generated "\n" make "\n\n"),
    ending a completion that ``hf`` would continue. Each call decodes a short tail of the row, enough tokens to
    hold the longest stop string.
    """

    def __init__(self, stop: Sequence[str], tokenizer):
        self.stop, self.tokenizer = tuple(stop), tokenizer
        longest = max(len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in self.stop)
        self.tail = longest + 2  # a stop string can span a few more tokens than its own

    def __call__(self, generated: list[int]) -> bool:
        text = self.tokenizer.decode(generated[-self.tail:])
        return any(s in text for s in self.stop)


def mask_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a padded batch from its 0/1 attention mask: each real token's index among its row's real
    tokens (0 on left padding, the last real position on right padding), as ``generate`` numbers left-padded rows."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def trim_at_eos(ids: list[int], eos_ids: set[int], pad_id: int | None) -> list[int]:
    """Cut a generated sequence after its first EOS (kept, so the model learns to stop)."""
    out = []
    for t in ids:
        if t in eos_ids:
            out.append(t)
            break
        out.append(t)
    if pad_id is not None and pad_id not in eos_ids:
        while out and out[-1] == pad_id:
            out.pop()
    return out


class InverseCDFSampler:
    """A logits processor that draws the next token from ``softmax(scores)`` and leaves only it finite.

    Run with greedy decoding, it samples as ``do_sample=True`` does, but by inverse CDF (a cumulative sum
    and a binary search) instead of ``torch.multinomial``, which on this CPU takes 6-20x longer for 16 rows
    over SmolLM2's 49k-token vocabulary (tests/bench/test_kernels.py, results/bench/kernels.md). In float32, as transformers' own
    sampler: each token's drawn probability is its softmax probability within one rounding of the running
    sum (≤ 6e-8). Draws use torch's global generator, so a seeded run repeats.
    """

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tokens = inverse_cdf_draw(scores)
        return torch.full_like(scores, float("-inf")).scatter_(-1, tokens, 0.0)


def inverse_cdf_draw(scores: torch.Tensor) -> torch.Tensor:
    """One column index per row, drawn from ``softmax(scores)`` by inverse CDF (shape ``[rows, 1]``)."""
    cdf = torch.softmax(scores.float(), dim=-1).cumsum_(-1)
    total = cdf[:, -1:].contiguous()
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * total
    # the first token whose cumulative mass exceeds u (a token of probability 0 never does), capped at the
    # last token with any mass, the first to reach the total (for u rounded up to the total)
    return torch.minimum(torch.searchsorted(cdf, u, right=True), torch.searchsorted(cdf, total))


def draw_from_top_k(scores: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """One token per row from ``softmax(scores / temperature)`` restricted to the row's ``k`` largest scores: what
    the temperature and top-k warpers followed by :class:`InverseCDFSampler` draw (``generate(do_sample=True)``'s
    distribution with its default top-k of 50), but over k tokens instead of the vocabulary: 3.1 ms against 17.4 ms
    a draw for 80 rows x 49k tokens on 2 Xeon cores (results/bench/decode_step.md). The one difference: a score tied with the k-th largest is
    kept by the warper and may be left out here."""
    values, tokens = scores.float().topk(min(k, scores.shape[-1]), dim=-1)
    return tokens.gather(-1, inverse_cdf_draw(values / temperature)).squeeze(-1)


def sampling_processors(params: SamplingParams):
    """Temperature, top-k, top-p (in the order ``generate(do_sample=True)`` applies them), then one draw
    (:class:`InverseCDFSampler`), for ``generate(do_sample=False)``."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    processors = []
    if params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k > 0:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    return LogitsProcessorList([*processors, InverseCDFSampler()])


class HFEngine:
    """``model.generate`` with the policy's weights.

    With ``bf16`` the engine samples from a bf16 copy of the policy, refreshed by
    ``sync_weights`` after each update: autocast over fp32 weights would re-cast
    every weight at every generated token.
    Without ``bf16`` it samples from the policy object itself.
    """

    def __init__(self, model, tokenizer, batch_size: int = 64, bf16: bool = True):
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.model = copy.deepcopy(model).to(torch.bfloat16).eval().requires_grad_(False) if bf16 else model
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}

    @torch.no_grad()
    def sync_weights(self, model) -> None:
        if self.model is not model:
            for sampler, trained in zip(self.model.parameters(), model.parameters()):
                sampler.copy_(trained)

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[int]]:
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out: list[list[int]] = []
        # argmax over scores that a sampling processor has already reduced to one draw
        processors = None if params.greedy else sampling_processors(params)
        try:
            with attention(self.model, cpu_attention(device, None)):
                for chunk, copies in self._chunks(prompts, params.n):
                    ids, attn = (t.to(device) for t in left_pad(chunk, self.tokenizer.pad_token_id))
                    # on the CPU a cache that does not copy itself at every token (suite/kv_cache.py)
                    cache = preallocated_cache() if device.type == "cpu" else None
                    if copies > 1 and ids.shape[1] > 1:
                        cache = self._shared_prompt_cache(ids, attn, copies, cache)
                    ids, attn = ids.repeat_interleave(copies, 0), attn.repeat_interleave(copies, 0)
                    for row in self._decode(ids, attn, cache, params, processors):
                        out.append(cut_at_stop(row, params.stop, self.tokenizer))
        finally:
            self.model.train(was_training)
        return out

    def _decode(self, ids: torch.Tensor, attn: torch.Tensor, cache, params: SamplingParams, processors):
        """Decode up to ``params.max_new_tokens`` tokens per row of left-padded ``ids`` (their first
        ``cache.get_seq_length()`` positions already in ``cache``): the loop of ``generate(do_sample=False,
        logits_processor=processors)``, with the same positions (the attention mask's running count) and scores
        (float32 logits of the last position), except that rows which have ended (EOS, kept, or a stop string) leave
        the batch: once a quarter of the rows still decoded have ended, the batch and the cache keep only the
        others, so a step costs the unfinished rows only. Returns each row's generated ids."""
        stopped = StopOnText(params.stop, self.tokenizer) if params.stop else None
        # sampling among the top k alone (lm-eval's sampled tasks: transformers' default top-k, no top-p)
        top_k_only = processors is not None and params.top_k > 0 and params.top_p >= 1.0
        positions = mask_positions(attn)
        cached = cache.get_seq_length() if cache is not None else 0
        inputs, positions = ids[:, cached:], positions[:, cached:]
        rows: list[list[int]] = [[] for _ in range(ids.shape[0])]
        live = list(range(ids.shape[0]))  # the row of ``rows`` each batch row decodes
        ended = [False] * len(live)  # per batch row
        for _ in range(params.max_new_tokens):
            output = self.model(input_ids=inputs, attention_mask=attn, position_ids=positions,
                                past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = output.past_key_values
            scores = output.logits[:, -1].float()
            if top_k_only:
                tokens = draw_from_top_k(scores, params.top_k, params.temperature)
            else:
                tokens = (scores if processors is None else processors(inputs, scores)).argmax(-1)
            for b, token in enumerate(tokens.tolist()):
                if ended[b]:
                    continue
                row = rows[live[b]]
                row.append(token)
                ended[b] = token in self.eos_ids or stopped is not None and stopped(row)
            finished = sum(ended)
            if finished == len(live):
                break
            attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
            inputs, positions = tokens[:, None], positions[:, -1:] + 1
            if finished >= max(1, len(live) // 4):
                keep = [b for b, done in enumerate(ended) if not done]
                index = torch.tensor(keep, device=attn.device)
                cache.batch_select_indices(index)
                attn, inputs, positions = attn[index], inputs[index], positions[index]
                live, ended = [live[b] for b in keep], [False] * len(keep)
        return rows

    def _chunks(self, prompts: Sequence[list[int]], n: int) -> list[tuple[list[list[int]], int]]:
        """(distinct prompts, copies of each) per ``generate`` call, at most ``batch_size`` rows each: whole
        groups of ``n`` while a group fits, else one copy per row."""
        if 1 < n <= self.batch_size:
            per_call = self.batch_size // n
            return [(list(prompts[s:s + per_call]), n) for s in range(0, len(prompts), per_call)]
        rows = [p for p in prompts for _ in range(n)]
        return [(rows[s:s + self.batch_size], 1) for s in range(0, len(rows), self.batch_size)]

    def _shared_prompt_cache(self, ids: torch.Tensor, attn: torch.Tensor, copies: int, cache=None):
        """Keys and values of all but the last prompt token, computed once per distinct prompt (into ``cache``,
        None: a new dynamic one) and repeated for its ``copies`` samples; ``_decode`` then feeds only the last
        prompt token (it skips what is cached)."""
        positions = mask_positions(attn[:, :-1])
        cache = self.model(input_ids=ids[:, :-1], attention_mask=attn[:, :-1], position_ids=positions,
                           past_key_values=cache, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(copies)
        return cache


def engine_kind(kind: str) -> str:
    """``auto`` -> ``vllm`` on a GPU with vLLM installed, else ``hf``."""
    if kind == "auto":
        return "vllm" if torch.cuda.is_available() and has_vllm() else "hf"
    return kind


def make_engine(kind: str, model, tokenizer, model_path: str, *, batch_size: int, bf16: bool, seed: int,
                vllm_options: dict | None = None):
    kind = engine_kind(kind)
    if kind == "vllm":
        if not has_vllm():
            raise RuntimeError("engine 'vllm' needs the optional extra: pip install 'rlrepro[gpu]'")
        from .vllm_engine import VLLMEngine  # suite/vllm_engine.py: colocated, sleeping during the update

        return VLLMEngine(model_path, tokenizer, seed=seed, **(vllm_options or {}))
    return HFEngine(model, tokenizer, batch_size=batch_size, bf16=bf16)


def has_vllm() -> bool:
    """Whether the optional vLLM extra is installed (found without importing it, which is slow)."""
    return importlib.util.find_spec("vllm") is not None


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def left_pad(seqs: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s)
            attn[i, width - len(s):] = 1
    return ids, attn


@dataclass
class Rollouts:
    """Trajectories ready for the policy update (one row per trajectory)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    loss_mask: list[list[int]]  # 1 = trained token (generated by the policy)
    advantages: list[list[float]]  # per completion token
    rewards: list[float]
    correct: list[bool]
    group: list[int]  # rows with the same group id answer the same prompt
    old_logp: list[list[float] | None] | None = None  # recorded behaviour log-probs, per row or None
    texts: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # method-specific per-step metrics
    off_policy: list[bool] = field(default_factory=list)  # per row: replayed from a buffer (empty: none is)
    # per row: the episode it is a step of (multi-step agents, ``loss_agg: episode-step-token-mean``); empty:
    # every row is an episode of its own
    episode: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.completion_ids)


def broadcast(values: Sequence[float], completion_ids: Sequence[list[int]]) -> list[list[float]]:
    """Give each row's scalar to every one of its completion tokens."""
    return [[float(v)] * len(c) for v, c in zip(values, completion_ids)]


@dataclass
class Batch:
    """Tensors of some rows of :class:`Rollouts` in the training layout."""

    input_ids: torch.Tensor  # [B, P + C]
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    completion_ids: torch.Tensor  # [B, C]
    loss_mask: torch.Tensor  # [B, C] float
    advantages: torch.Tensor  # [B, C]
    old_logp: torch.Tensor  # [B, C] recorded behaviour log-probs (0 where none)
    has_old_logp: torch.Tensor  # [B] bool: row carries recorded log-probs
    off_policy: torch.Tensor | None = None  # [B] bool: row replayed from a buffer (Rollouts.off_policy)
    entropy: torch.Tensor | None = None  # [B, C] token entropy of the update's forward pass (set by the trainer)
    row_weight: torch.Tensor | None = None  # [B] each row's weight in the whole batch (losses.episode_row_weights)
    # When rows share prompts (a GRPO group): the U distinct prompts, left-padded to the same width P as
    # input_ids' prompt part, and each row's index into them; None when every row's prompt is its own.
    distinct_prompts: torch.Tensor | None = None  # [U, P]
    distinct_prompt_mask: torch.Tensor | None = None  # [U, P]
    prompt_of_row: torch.Tensor | None = None  # [B] long

    def to(self, device) -> "Batch":
        for name in ("input_ids", "attention_mask", "position_ids", "completion_ids", "loss_mask",
                     "advantages", "old_logp", "has_old_logp", "off_policy", "row_weight", "distinct_prompts",
                     "distinct_prompt_mask", "prompt_of_row"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self


def collate(r: Rollouts, rows: Sequence[int], pad_id: int) -> Batch:
    prompt, attn_p = left_pad([r.prompt_ids[i] for i in rows], pad_id)
    width = max(1, max(len(r.completion_ids[i]) for i in rows))
    n = len(rows)
    comp = torch.full((n, width), pad_id, dtype=torch.long)
    attn_c = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width))
    adv = torch.zeros((n, width))
    old = torch.zeros((n, width))
    has_old = torch.zeros(n, dtype=torch.bool)
    for j, i in enumerate(rows):
        length = len(r.completion_ids[i])
        if length == 0:
            continue
        comp[j, :length] = torch.tensor(r.completion_ids[i])
        attn_c[j, :length] = 1
        mask[j, :length] = torch.tensor(r.loss_mask[i], dtype=torch.float)
        adv[j, :length] = torch.tensor(r.advantages[i])
        if r.old_logp is not None and r.old_logp[i] is not None:
            old[j, :length] = torch.tensor(r.old_logp[i])
            has_old[j] = True
    attended = torch.cat([attn_p, attn_c], dim=1)
    positions = mask_positions(attended)
    batch = Batch(input_ids=torch.cat([prompt, comp], dim=1), attention_mask=attended, position_ids=positions,
                  completion_ids=comp, loss_mask=mask, advantages=adv, old_logp=old, has_old_logp=has_old,
                  off_policy=torch.tensor([bool(r.off_policy and r.off_policy[i]) for i in rows], dtype=torch.bool))
    weights = episode_row_weights(r.episode, len(r))  # over all rows of r, so micro-batches sum to the batch
    batch.row_weight = torch.tensor([weights[i] for i in rows])
    prompts = [tuple(r.prompt_ids[i]) for i in rows]
    distinct = list(dict.fromkeys(prompts))
    if len(distinct) < n:
        index = {p: k for k, p in enumerate(distinct)}
        batch.distinct_prompts, batch.distinct_prompt_mask = left_pad([list(p) for p in distinct], pad_id)
        batch.prompt_of_row = torch.tensor([index[p] for p in prompts])
    return batch
