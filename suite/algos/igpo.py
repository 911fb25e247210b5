"""IGPO (Wang et al., 2025): information-gain turn rewards for a multi-turn search agent.

Rollouts. For each of ``prompts_per_step`` questions, ``group_size`` episodes of the search agent
(:mod:`suite.agents.search_agent`) are played over a BM25 corpus, all live episodes of the step
generated in one batch per turn, generation stopping at ``</search>`` / ``</answer>``. One row per
episode: completion = the turns and the ``<information>`` observations between them; loss mask 1
on generated tokens, 0 on observation tokens.

Turn rewards. An episode with T turns gets

    r_t = IG_t = p_t - p_{t-1}          for 1 <= t < T   (ig_type=log_prob_diff: log p_t - log p_{t-1})
    r_T = F1(answer, gold)              (-2 for a malformed episode: unbalanced tags or no answer)

where p_t = exp(mean_j log pi(a_j | prompt, first t turns and observations, probe prefix, a_<j)) is
the rollout policy's probability of the gold answer a (its first alias) teacher-forced after the
fixed probe ``PROBE_PREFIX + a + PROBE_SUFFIX``; p_0 is taken on the prompt alone. All probes of a
step are computed without gradient in micro-batched forward passes in which *each row carries
one episode with all its probes*: the episode's tokens once, then the T probes, probe t attending
(through a 4-D attention mask) only to the first c_t episode tokens and to itself, with positions
continuing from c_t, so it sees exactly the per-turn context.

Advantages. Rewards are normalised within the group of G episodes of a question:

    joint (default, the paper): all turn rewards of the group, IG and F1 together, are z-scored as one
              pool;   separate (ablation): IG rewards (all turns of all G episodes) and F1 rewards (one
              per episode) are z-scored as two pools.
    An episode that was not probed (no gold answer text) has no IG rewards: its non-final turns put
    nothing into the pools (not IG = 0) and get a normalised reward of 0.
    z(r) = (r - mean) / (std + 1e-6),  std = sqrt(population variance + 1e-8), std := 1 for a pool of
    one (scale_rewards=false: r - mean), as the reference implementation computes it;

then A_k = r^_k + gamma * A_{k+1} (A_{T+1} = 0) is given to every generated token of turn k.
The loss is the trainer's clipped surrogate + KL.

Baselines (``reward_mode``): ``grpo_f1`` (outcome GRPO: one F1 per episode, the foundation's group
advantage on every generated token, no probes), ``ig_only`` (the F1 turn reward dropped: A_T = 0),
``f1_only`` (the IG rewards dropped; with gamma = 1 this is outcome GRPO up to the std convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..agents.search_agent import STOP, Episode, new_episode, open_engine, run_episodes
from ..envs.search import DEFAULT_MAX_WORDS, PROMPTS, SearchEnv
from ..rewards.igpo import MALFORMED, extract_answer, igpo_em, igpo_f1
from ..rollout import Rollouts, SamplingParams, autocast
from ..trainer import Method
from .grpo import group_advantages

PROBE_PREFIX = "<think>Now there's enough information to answer.</think>\n<answer> "
PROBE_SUFFIX = " </answer>"
REWARD_MODES = ("igpo", "ig_only", "f1_only", "grpo_f1")
EPS = 1e-6
VAR_EPS = 1e-8


# --------------------------------------------------------------------------- rewards and advantages


def information_gains(probe_logps: list[float], ig_type: str = "prob_diff") -> list[float]:
    """IG_t for t = 1..K-1 from the mean gold log-probs of the probes at turns 0..K-1."""
    if ig_type == "prob_diff":
        values = [math.exp(x) for x in probe_logps]
    elif ig_type == "log_prob_diff":
        values = list(probe_logps)
    else:
        raise ValueError(f"ig_type must be prob_diff or log_prob_diff, got {ig_type!r}")
    return [b - a for a, b in zip(values, values[1:])]


def episode_turn_rewards(n_turns: int, probes: list[float] | None, f1: float, reward_mode: str = "igpo",
                         ig_type: str = "prob_diff") -> list[float | None]:
    """One episode's turn rewards: IG_t for the turns before the last, F1 last; ``None`` marks a reward that
    does not exist or is dropped: the IG of an episode that was not probed (no gold answer text, or
    ``probes`` missing), every IG under ``f1_only``, the F1 under ``ig_only``. A ``None`` stays out of the
    normalisation pools (it is not an IG of 0) and normalises to 0."""
    probed = reward_mode != "f1_only" and probes is not None and len(probes) == n_turns > 1
    ig: list[float | None] = information_gains(probes, ig_type) if probed else [None] * (n_turns - 1)
    return ig + [None if reward_mode == "ig_only" else f1]


def _pool_stats(values: list[float], scale: bool) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    mean = float(np.mean(values))
    if not scale:
        return mean, 1.0
    std = 1.0 if len(values) <= 1 else math.sqrt(float(np.var(values)) + VAR_EPS)
    return mean, std + EPS


def normalise_group(turn_rewards: list[list[float | None]], mode: str = "joint",
                    scale: bool = True) -> list[list[float]]:
    """Z-score the turn rewards of one group. ``turn_rewards[i]`` lists episode i's rewards per turn:
    IG rewards for the turns before the last, the F1 reward last; ``None`` marks a dropped reward
    (ablations), which stays out of the pools and normalises to 0."""
    ig = [r for rewards in turn_rewards for r in rewards[:-1] if r is not None]
    f1 = [rewards[-1] for rewards in turn_rewards if rewards and rewards[-1] is not None]
    if mode == "separate":
        stats_ig, stats_f1 = _pool_stats(ig, scale), _pool_stats(f1, scale)
    elif mode == "joint":
        stats_ig = stats_f1 = _pool_stats(ig + f1, scale)
    else:
        raise ValueError(f"norm must be separate or joint, got {mode!r}")
    out = []
    for rewards in turn_rewards:
        row = []
        for t, r in enumerate(rewards):
            mean, div = stats_f1 if t == len(rewards) - 1 else stats_ig
            row.append(0.0 if r is None else (r - mean) / div)
        out.append(row)
    return out


def discounted_turn_advantages(rewards: list[float], gamma: float) -> list[float]:
    """A_k = r_k + gamma * A_{k+1}, A past the last turn = 0."""
    out, running = [0.0] * len(rewards), 0.0
    for k in reversed(range(len(rewards))):
        running = rewards[k] + gamma * running
        out[k] = running
    return out


def token_advantages(turns: list[tuple[int, int]], advantages: list[float], length: int) -> list[float]:
    """Turn k's advantage on each of its tokens; observation tokens get 0 (they are masked anyway)."""
    out = [0.0] * length
    for (start, end), a in zip(turns, advantages):
        out[start:end] = [a] * (end - start)
    return out


# --------------------------------------------------------------------------- probes


def probe_tokens(tokenizer, answer: str) -> tuple[list[int], int, int]:
    """Token ids of ``PROBE_PREFIX + answer + PROBE_SUFFIX`` and the [start, end) of the tokens that
    overlap the answer's characters (found through the tokenizer's offset mapping)."""
    text = PROBE_PREFIX + answer + PROBE_SUFFIX
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    lo, hi = len(PROBE_PREFIX), len(PROBE_PREFIX) + len(answer)
    gold = [j for j, (a, b) in enumerate(enc["offset_mapping"]) if a < hi and b > lo]
    if not gold:
        raise ValueError(f"the gold answer {answer!r} has no tokens in the probe")
    return list(enc["input_ids"]), gold[0], gold[-1] + 1


@dataclass
class ProbeRow:
    """One episode's probes: probe k is ``probe`` placed after the first ``points[k]`` ids of ``context``."""

    context: list[int]
    points: list[int]
    probe: list[int]
    gold: tuple[int, int]


def _mask_for(model, allowed: torch.Tensor) -> torch.Tensor:
    """``[B, S, S]`` allowed-attention booleans as the 4-D mask the model's attention expects."""
    impl = getattr(model.config, "_attn_implementation", "eager")
    if impl == "sdpa":
        return allowed[:, None]  # True = attend
    if impl == "eager":  # additive
        return torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)[:, None]
    raise ValueError(f"packed probes need sdpa or eager attention, not {impl!r}")


def _gold_logprobs(model, hidden: torch.Tensor, rows_pos: torch.Tensor, rows_idx: torch.Tensor,
                   targets: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden[rows_idx, rows_pos]).float() / temperature
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


@torch.no_grad()
def probe_logprobs_packed(model, rows: list[ProbeRow], pad_id: int, *, batch_size: int = 8,
                          bf16: bool = False, temperature: float = 1.0) -> list[list[float]]:
    """Mean gold-answer log-prob of every probe of every row; one forward pass per ``batch_size`` rows,
    each row holding its episode once and all its probes (4-D attention mask, see the module doc)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[float]] = []
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            seqs, spans = [], []  # spans: per row, the (offset, point) of each probe
            for row in chunk:
                base = row.context[:max(row.points)]
                seq, row_spans = list(base), []
                for point in row.points:
                    row_spans.append((len(seq), point))
                    seq += row.probe
                seqs.append(seq)
                spans.append(row_spans)
            width = max(len(s) for s in seqs)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            pos = torch.zeros((len(chunk), width), dtype=torch.long)
            allowed = torch.zeros((len(chunk), width, width), dtype=torch.bool)
            sel_row, sel_pos, sel_tgt, owner = [], [], [], []
            for b, (row, seq, row_spans) in enumerate(zip(chunk, seqs, spans)):
                ids[b, :len(seq)] = torch.tensor(seq)
                n = max(row.points)
                pos[b, :n] = torch.arange(n)
                allowed[b, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
                m = len(row.probe)
                for k, (offset, point) in enumerate(row_spans):
                    pos[b, offset:offset + m] = torch.arange(point, point + m)
                    allowed[b, offset:offset + m, :point] = True
                    allowed[b, offset:offset + m, offset:offset + m] = torch.ones(m, m, dtype=torch.bool).tril()
                    for j in range(*row.gold):  # token j of the probe is predicted at the position before it
                        sel_row.append(b)
                        sel_pos.append(offset + j - 1 if j > 0 else point - 1)
                        sel_tgt.append(row.probe[j])
                        owner.append((b, k))
                for q in range(len(seq), width):  # padding attends to itself only
                    allowed[b, q, q] = True
            with autocast(device, bf16):
                hidden = model.base_model(input_ids=ids.to(device), attention_mask=_mask_for(model, allowed).to(device),
                                          position_ids=pos.to(device), use_cache=False).last_hidden_state
                logp = _gold_logprobs(model, hidden, torch.tensor(sel_pos, device=device),
                                      torch.tensor(sel_row, device=device), torch.tensor(sel_tgt, device=device),
                                      temperature)
            sums = [[0.0] * len(r.points) for r in chunk]
            for (b, k), value in zip(owner, logp.tolist()):
                sums[b][k] += value
            n_gold = [r.gold[1] - r.gold[0] for r in chunk]
            out += [[s / n for s in row_sums] for row_sums, n in zip(sums, n_gold)]
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def probe_logprobs_per_turn(model, rows: list[ProbeRow], *, bf16: bool = False,
                            temperature: float = 1.0) -> list[list[float]]:
    """The same quantities with one plain causal forward pass per probe (the reference for tests)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for row in rows:
            values = []
            for point in row.points:
                seq = torch.tensor([row.context[:point] + row.probe], device=device)
                with autocast(device, bf16):
                    logits = model(input_ids=seq, use_cache=False).logits[0].float() / temperature
                logp = torch.log_softmax(logits, dim=-1)
                values.append(float(np.mean([logp[point + j - 1, row.probe[j]].item() for j in range(*row.gold)])))
            out.append(values)
    finally:
        model.train(was_training)
    return out


# --------------------------------------------------------------------------- the method


class IGPO(Method):
    # the paper's GRPO objective averages each episode's generated tokens (1/|o_i|), then the episodes
    defaults = {"loss_agg": "seq-mean-token-mean", "scale_rewards": True}

    @dataclass
    class Options:
        reward_mode: str = "igpo"  # igpo | ig_only | f1_only | grpo_f1
        norm: str = "joint"  # joint (the paper: one pool per group) | separate (ablation: IG and F1 pools)
        gamma: float = 1.0  # turn discount (reference: algorithm.gamma=1.0)
        ig_type: str = "prob_diff"  # prob_diff (p_t - p_{t-1}) | log_prob_diff
        corpus: str = "igpo_world_corpus"  # a registered corpus (suite/data.py) or a JSONL path
        mirror: str | None = None  # mirror folder for preparing a registered corpus ($RLREPRO_DATA_MIRROR if unset)
        prompt: str = "search_r1"  # the agent's instructions (suite.envs.search.PROMPTS)
        prefill: str = ""  # text every turn starts with (the reference: "<think>")
        first_prefill: str | None = None  # the first turn's opening instead, if set
        top_k: int = 3  # passages per search
        max_turns: int = 4  # model turns per episode (the last one must answer)
        max_words: int = DEFAULT_MAX_WORDS  # words kept per retrieved passage
        probe_batch_size: int = 4  # episodes per probe forward pass

        def __post_init__(self):
            checks = [
                ("reward_mode", self.reward_mode in REWARD_MODES, f"must be one of {list(REWARD_MODES)}"),
                ("norm", self.norm in ("separate", "joint"), "must be separate or joint"),
                ("gamma", 0.0 <= self.gamma <= 1.0, "must be in [0, 1]"),
                ("ig_type", self.ig_type in ("prob_diff", "log_prob_diff"), "must be prob_diff or log_prob_diff"),
                ("corpus", isinstance(self.corpus, str) and bool(self.corpus), "must be a corpus name or a file"),
                ("prompt", self.prompt in PROMPTS, f"must be one of {sorted(PROMPTS)}"),
                ("prefill", isinstance(self.prefill, str), "must be a string"),
                ("first_prefill", self.first_prefill is None or isinstance(self.first_prefill, str), "must be a string"),
                ("top_k", isinstance(self.top_k, int) and self.top_k >= 1, "must be an integer >= 1"),
                ("max_turns", isinstance(self.max_turns, int) and self.max_turns >= 1, "must be an integer >= 1"),
                ("max_words", isinstance(self.max_words, int) and self.max_words >= 1, "must be an integer >= 1"),
                ("probe_batch_size", isinstance(self.probe_batch_size, int) and self.probe_batch_size >= 1,
                 "must be an integer >= 1"),
            ]
            for name, ok, why in checks:
                if not ok:
                    raise ValueError(f"igpo option {name} = {getattr(self, name)!r} {why}")

    @classmethod
    def batch_description(cls, cfg) -> str:
        return f"{cfg.prompts_per_step} questions × {cfg.group_size} episodes"

    def __init__(self, trainer):
        super().__init__(trainer)
        o = self.options
        self.search = open_engine(o.corpus, self.cfg.data_dir, o.mirror, o.top_k)

    @property
    def uses_probes(self) -> bool:
        return self.options.reward_mode in ("igpo", "ig_only")

    def new_env(self) -> SearchEnv:
        o = self.options
        return SearchEnv(self.search, max_turns=o.max_turns, top_k=o.top_k, max_words=o.max_words,
                         prompt_template=PROMPTS[o.prompt])

    def play(self, records: list[dict], n: int) -> list[Episode]:
        """``n`` episodes per record, every turn of all live episodes generated in one batch."""
        t, cfg = self.trainer, self.cfg
        episodes = [new_episode(rec["prompt"], self.new_env(), t.chat_ids) for rec in records for _ in range(n)]
        params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                stop=STOP)
        # through the trainer: split by prompt group over ranks (and seeded per group) when there are several
        return list(run_episodes(episodes, lambda contexts: t.generate(contexts, 1, params=params), t.tokenizer,
                                 self.options.prefill, self.options.first_prefill))

    def probe(self, episodes: list[Episode], answers: list[str]) -> list[list[float]]:
        """Mean gold log-prob of the probes at turns 0..T-1 of every episode (T = its number of turns)."""
        t, cfg = self.trainer, self.cfg
        cache: dict[str, tuple] = {}
        rows, which = [], []
        for i, (e, answer) in enumerate(zip(episodes, answers)):
            if len(e.turns) < 2 or not answer.strip():  # a one-turn episode has no information gain
                continue
            if answer not in cache:
                cache[answer] = probe_tokens(t.tokenizer, answer)
            ids, g0, g1 = cache[answer]
            points = [len(e.prompt_ids)] + [len(e.prompt_ids) + c for c in e.observed[:len(e.turns) - 1]]
            rows.append(ProbeRow(context=e.context, points=points, probe=ids, gold=(g0, g1)))
            which.append(i)
        values = probe_logprobs_packed(t.policy, rows, t.tokenizer.pad_token_id, batch_size=self.options.probe_batch_size,
                                       bf16=t.bf16, temperature=cfg.temperature)
        out: list[list[float]] = [[] for _ in episodes]
        for i, v in zip(which, values):
            out[i] = v
        return out

    def collect(self, step: int) -> Rollouts:
        cfg, o, G = self.cfg, self.options, self.cfg.group_size
        records = self.trainer.records_for_step(step, cfg.prompts_per_step)
        episodes = self.play(records, G)
        expanded = [rec for rec in records for _ in range(G)]
        texts = [self.trainer.tokenizer.decode(e.ids, skip_special_tokens=True) for e in episodes]
        f1 = [igpo_f1(text, rec["answers"], train=True) for text, rec in zip(texts, expanded)]
        em = [igpo_em(text, rec["answers"]) for text, rec in zip(texts, expanded)]
        probes = self.probe(episodes, [rec["answers"][0] for rec in expanded]) if self.uses_probes else None

        advantages, igs = [], []
        if o.reward_mode == "grpo_f1":
            grouped = torch.tensor(f1, dtype=torch.float).view(len(records), G)
            outcome = group_advantages(grouped, scale_by_std=cfg.scale_rewards).flatten().tolist()
            advantages = [token_advantages(e.turns, [a] * len(e.turns), len(e.ids)) for e, a in zip(episodes, outcome)]
        else:
            for g in range(len(records)):
                members = range(g * G, (g + 1) * G)
                turn_rewards = []
                for i in members:
                    n_turns = len(episodes[i].turns)
                    probed = probes is not None and len(probes[i]) == n_turns > 1
                    if probed:
                        igs += information_gains(probes[i], o.ig_type)
                    turn_rewards.append(episode_turn_rewards(n_turns, probes[i] if probed else None, f1[i],
                                                             o.reward_mode, o.ig_type))
                normalised = normalise_group(turn_rewards, o.norm, cfg.scale_rewards)
                for i, rewards in zip(members, normalised):
                    e = episodes[i]
                    advantages.append(token_advantages(e.turns, discounted_turn_advantages(rewards, o.gamma), len(e.ids)))

        turns = [len(e.turns) for e in episodes]
        metrics = {
            "f1": float(np.mean([max(x, 0.0) for x in f1])),
            "malformed_frac": float(np.mean([x == MALFORMED for x in f1])),
            "answered_frac": float(np.mean([extract_answer(x) is not None for x in texts])),
            "turns": float(np.mean(turns)),
            "search_calls": float(np.mean([e.info.get("search_calls", 0) for e in episodes])),
            "generated_tokens": float(np.mean([sum(e.mask) for e in episodes])),
            "observation_tokens": float(np.mean([len(e.mask) - sum(e.mask) for e in episodes])),
        }
        if probes is not None and igs:  # mean information gain per non-final turn, gold probability at turn 0
            metrics["ig"] = float(np.mean(igs))
            metrics["p0"] = float(np.mean([math.exp(p[0]) for p in probes if p]))
        return Rollouts(
            prompt_ids=[e.prompt_ids for e in episodes], completion_ids=[e.ids for e in episodes],
            loss_mask=[e.mask for e in episodes], advantages=advantages, rewards=f1,
            correct=[x > 0 for x in em], group=[i // G for i in range(len(episodes))],
            texts=texts, prompts=[rec["prompt"] for rec in expanded], metrics=metrics,
        )
