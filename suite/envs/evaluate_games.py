"""Evaluate a language agent (or a reference policy) on held-out episodes of a text game.

Registered in ``suite.evaluate.CUSTOM_TASKS``: the tasks ``frozen_lake``,
``frozen_lake_slippery``, ``snake`` and ``snake_poison_apple`` (task name = game
name) are scored here, outside lm-eval, and written in the same results-JSON
schema as the lm-eval tasks::

    {task, model, metrics: {name: {value, stderr}}, n, limit, sampling, backend,
     lm_eval_version: "n/a", seed, config_hash}

with one row per episode in ``<out>.samples.jsonl`` (seed, actions, responses,
return, success).

Episodes: one per held-out seed (the ``test`` split of the dataset
``<game>_seeds`` in ``suite.data``: seeds 0..199), the first ``limit`` of them,
``repeats`` times (repeat r > 0 redraws the game's randomness with
``dynamics_seed = r``). All episodes play in lockstep, one batched generation
per turn.

Metrics (stderr = sample std / sqrt(n) over episodes):
``success_rate`` (FrozenLake: reached the goal; Snake: survived to the turn cap),
``mean_return`` (sum of rewards, format penalties included), ``episode_length``
(turns), ``invalid_action_rate`` (per episode, the fraction of turns whose
response named no legal action; those turns play the fallback).

Models: a checkpoint or model name (anything ``suite.models`` resolves), decoded
greedily by default through HF ``generate`` (vLLM when the backend is ``vllm``),
with the model's chat template; or a reference policy by pseudo-model name:
``random`` (uniform legal action, seeded per episode) and ``planner`` (BFS
shortest safe path on FrozenLake, the BFS-to-apple heuristic on Snake), which
answer through the same extractor as a model would.

Settings a profile may override (``eval.tasks.<task>.overrides``), with defaults:
``repeats`` 1; ``generation_kwargs`` {max_gen_toks: 64, do_sample: false,
temperature: 1.0}; ``history`` 0; ``prompt_style`` think; ``format_penalty`` -0.1;
``fallback`` noop; ``game_kwargs`` {} (e.g. {max_steps: 10}); ``response_prefill`` "" (text every model response
starts with, after the chat template, e.g. "<action>"; ignored by the reference policies). They should match
the training options of the model evaluated (``train.algo`` of ``msgrpo``).
"""

from __future__ import annotations

import copy
import math
import statistics
from pathlib import Path
from typing import Any

import torch

from ..io import samples_path, write_json, write_jsonl
from .base import FALLBACKS, PROMPT_STYLES, Episode, LanguageAgentEnv, play_episodes, prefill_ids
from .registry import GAMES, REFERENCES, make_game, reference_policy

DEFAULTS: dict[str, Any] = {
    "repeats": 1,
    "generation_kwargs": {"max_gen_toks": 64, "do_sample": False, "temperature": 1.0},
    "history": 0,
    "prompt_style": "think",
    "format_penalty": -0.1,
    "fallback": "noop",
    "game_kwargs": {},
    "response_prefill": "",
}
METRICS = ("success_rate", "mean_return", "episode_length", "invalid_action_rate")


def settings(task: str, overrides: dict | None) -> dict[str, Any]:
    """The defaults with a profile's overrides merged in, checked, naming a bad key."""
    out = copy.deepcopy(DEFAULTS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULTS:
            raise ValueError(f"task {task!r}: unknown override {key!r}; allowed: {sorted(DEFAULTS)}")
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"task {task!r}: override {key} = {value!r} must be a mapping")
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    gen = out["generation_kwargs"]
    unknown = sorted(set(gen) - set(DEFAULTS["generation_kwargs"]))
    if unknown:
        raise ValueError(f"task {task!r}: unknown generation_kwargs {unknown}; allowed: "
                         f"{sorted(DEFAULTS['generation_kwargs'])}")
    checks = [
        ("repeats", isinstance(out["repeats"], int) and out["repeats"] >= 1, "must be an integer >= 1"),
        ("history", isinstance(out["history"], int) and out["history"] >= 0, "must be an integer >= 0"),
        ("prompt_style", out["prompt_style"] in PROMPT_STYLES, f"is not one of {list(PROMPT_STYLES)}"),
        ("format_penalty", out["format_penalty"] <= 0, "must be <= 0"),
        ("fallback", out["fallback"] in FALLBACKS, f"is not one of {list(FALLBACKS)}"),
        ("response_prefill", isinstance(out["response_prefill"], str), "must be a string"),
        ("generation_kwargs.max_gen_toks", isinstance(gen["max_gen_toks"], int) and gen["max_gen_toks"] >= 1,
         "must be an integer >= 1"),
        ("generation_kwargs.temperature", gen["temperature"] > 0, "must be > 0"),
    ]
    for name, ok, why in checks:
        if not ok:
            value = out
            for part in name.split("."):
                value = value[part]
            raise ValueError(f"task {task!r}: {name} = {value!r} {why}")
    try:
        make_game(task, **out["game_kwargs"])
    except TypeError as err:
        raise ValueError(f"task {task!r}: game_kwargs {out['game_kwargs']!r} do not fit the game: {err}") from None
    return out


def heldout_seeds(game: str, limit: int | None = None) -> list[int]:
    """The first ``limit`` held-out seeds of ``game`` (the ``test`` split of ``<game>_seeds``)."""
    from .. import import_object
    from ..data import get_spec

    spec = get_spec(f"{game}_seeds")
    records = import_object(spec.generator, f"dataset {spec.name!r} generator")(**spec.generator_kwargs["test"])
    if limit is not None and limit > len(records):
        raise ValueError(f"limit {limit} exceeds the {len(records)} held-out seeds of dataset {spec.name!r}")
    return [int(r["metadata"]["seed"]) for r in records[:limit]]


class ModelAgent:
    """A model answering a batch of prompts (chat template applied), greedy unless ``do_sample``."""

    def __init__(self, model: str, generation_kwargs: dict, batch_size: int = 16, backend: str = "rlrepro",
                 seed: int = 0, response_prefill: str = ""):
        from ..models import load_model, resolve_model

        self.max_new_tokens = generation_kwargs["max_gen_toks"]
        self.do_sample = generation_kwargs["do_sample"]
        self.temperature = generation_kwargs["temperature"]
        self.batch_size, self.backend, self.seed = batch_size, backend, seed
        if backend == "vllm":
            from transformers import AutoTokenizer

            from ..vllm_engine import VLLMEngine

            location = resolve_model(model)
            self.tokenizer = AutoTokenizer.from_pretrained(location)
            self.engine = VLLMEngine(location, self.tokenizer, seed=seed, gpu_memory_utilization=0.8)
            self.model = None
        else:
            gpu = torch.cuda.is_available()
            self.model, self.tokenizer = load_model(model, dtype=torch.bfloat16 if gpu else torch.float32)
            self.model.to("cuda" if gpu else "cpu").eval()
            eos = self.model.generation_config.eos_token_id
            self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
            if backend == "rlrepro":  # the trainer's engine (eager attention, inverse-CDF draws); "hf": generate()
                from ..rollout import HFEngine

                self.engine = HFEngine(self.model, self.tokenizer, batch_size=batch_size, bf16=False)
        self.response_prefill = response_prefill
        self.prefill = prefill_ids(self.tokenizer, response_prefill)  # computed once, not per prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        torch.manual_seed(seed)

    def prompt_ids(self, prompt: str) -> list[int]:
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + self.prefill

    def __call__(self, envs: list[LanguageAgentEnv], prompts: list[str]) -> list[tuple[str, Any]]:
        ids = [self.prompt_ids(p) for p in prompts]
        completions = self._generate_vllm(ids) if self.model is None else self._generate_hf(ids)
        texts = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        return [(self.response_prefill + text, None) for text in texts]

    @torch.no_grad()
    def _generate_hf(self, prompts: list[list[int]]) -> list[list[int]]:
        from ..rollout import SamplingParams, left_pad, trim_at_eos

        if self.backend == "rlrepro":
            return self.engine.generate(prompts, SamplingParams(max_new_tokens=self.max_new_tokens,
                                                                temperature=self.temperature or 1.0,
                                                                greedy=not self.do_sample))

        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        sample = {"do_sample": True, "temperature": self.temperature, "top_k": 0} if self.do_sample else \
            {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        out = []
        for start in range(0, len(prompts), self.batch_size):
            ids, attn = left_pad(prompts[start:start + self.batch_size], pad)
            gen = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), pad_token_id=pad,
                                      max_new_tokens=self.max_new_tokens, **sample)
            out += [trim_at_eos(row, self.eos_ids, pad) for row in gen[:, ids.shape[1]:].tolist()]
        return out

    def _generate_vllm(self, prompts: list[list[int]]) -> list[list[int]]:
        from ..rollout import SamplingParams

        temperature = self.temperature if self.do_sample else 0.0  # vLLM: temperature 0 = greedy
        return self.engine.generate(prompts, SamplingParams(max_new_tokens=self.max_new_tokens,
                                                            temperature=temperature))


def reference_agent(kind: str, game: str, envs: list[LanguageAgentEnv], seeds: list[int], repeats: list[int]):
    """``act`` for a reference policy: it answers with its action in tags."""
    policies = {id(env): reference_policy(kind, game, seed * 1000 + r) for env, seed, r in zip(envs, seeds, repeats)}

    def act(active: list[LanguageAgentEnv], prompts: list[str]) -> list[tuple[str, Any]]:
        return [(f"<action>{policies[id(env)](env.game)}</action>", None) for env in active]

    return act


def summarise(episodes: list[Episode]) -> dict[str, dict[str, float | None]]:
    per_episode = {
        "success_rate": [float(ep.success) for ep in episodes],
        "mean_return": [ep.ret for ep in episodes],
        "episode_length": [float(ep.length) for ep in episodes],
        "invalid_action_rate": [ep.invalid / ep.length for ep in episodes],
    }
    return {name: {"value": statistics.fmean(values),
                   "stderr": statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None}
            for name, values in per_episode.items()}


def evaluate_game(model: str, task: str, out: str | Path, *, data_dir: str = "data", limit: int | None = None,
                  overrides: dict | None = None, seed: int = 0, batch_size: int = 16, backend: str | None = None,
                  config_hash: str | None = None) -> dict:
    """Play the held-out episodes of game ``task`` with ``model``; write ``out`` and ``out``.samples.jsonl."""
    if task not in GAMES:
        raise ValueError(f"unknown game task {task!r}; game tasks: {sorted(GAMES)}")
    cfg = settings(task, overrides)
    seeds = heldout_seeds(task, limit)
    pairs = [(s, r) for s in seeds for r in range(cfg["repeats"])]
    envs = [LanguageAgentEnv(make_game(task, **cfg["game_kwargs"]), format_penalty=cfg["format_penalty"],
                             fallback=cfg["fallback"], seed=s) for s, _ in pairs]
    if model in REFERENCES:
        act, backend = reference_agent(model, task, envs, [s for s, _ in pairs], [r for _, r in pairs]), "reference"
    else:
        backend = backend or "rlrepro"
        act = ModelAgent(model, cfg["generation_kwargs"], batch_size=batch_size, backend=backend, seed=seed,
                         response_prefill=cfg["response_prefill"])
    episodes = play_episodes(envs, [s for s, _ in pairs], act, history=cfg["history"], style=cfg["prompt_style"],
                             dynamics_seeds=[None if r == 0 else r for _, r in pairs])
    result = {
        "task": task,
        "model": model,
        "metrics": summarise(episodes),
        "n": len(episodes),
        "limit": limit,
        "sampling": {"repeats": cfg["repeats"],
                     "generation_kwargs": cfg["generation_kwargs"] if backend != "reference" else {},
                     **{k: cfg[k] for k in ("history", "prompt_style", "format_penalty", "fallback", "game_kwargs",
                                        "response_prefill")}},
        "backend": backend,
        "lm_eval_version": "n/a",
        "seed": seed,
        "config_hash": config_hash,
    }
    write_jsonl(samples_path(out), (
        {"id": f"{task}-test-{ep.seed}", "seed": ep.seed, "repeat": r, "success": ep.success, "return": ep.ret,
         "length": ep.length, "invalid": ep.invalid, "actions": [t.action for t in ep.turns],
         "responses": [t.response for t in ep.turns]} for ep, (_, r) in zip(episodes, pairs)))
    write_json(out, result)
    return result
