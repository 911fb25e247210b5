"""``tiny-llama-warm``: the tiny test model, briefly fine-tuned so that RL has something to learn from.

The random ``tiny-llama`` never writes a well-formed answer, so every reward of a smoke run is the same,
every advantage is 0 and no weight moves: a smoke run (and a resume test) built on it proves only that the
code runs. This module fine-tunes it for some seconds, at build time, on the small training sets that the
smoke profile's runs train on (``SMOKE_SETS``, registered in ``suite.data``), each
prompt answered right with probability 1/2 and wrong otherwise, drawn anew each time it is seen:

- ``arithmetic_smoke``: 16 single-digit additions, plain and ``math`` templates: ``\\boxed{N}``;
- ``countdown_smoke``: 16 two-number Countdown puzzles: ``\\boxed{expression}``;
- multiple choice: the same additions under MMLU's prompt with four lettered options: ``The answer is: X``
  (for the smoke's MMLU runs: the format, with the letter at chance);
- the IGPO world (its first train questions under the Search-R1 prompt): ``<answer> name </answer>``, and
  as often ``<search> names in the question </search>``, so that episodes have more than one turn;
- Frozen Lake and Snake (MS-GRPO's ``direct`` prompt): ``<action>MOVE</action>`` with a legal move.

So the warmed-up model samples a right answer about half the time on the smoke's training prompts, groups
of samples differ, GRPO's advantages are not all 0, and RL moves the rate: a wrong sign in an advantage, a
dropped loss mask or a wrong KL sign moves the smoke numbers the regression check guards. The smoke's
held-out test splits are not in the corpus. A 2-layer model cannot learn arithmetic in seconds; it can
memorise 16 facts, which is all a smoke run needs. Deterministic (fixed seeds, one thread), cached like
every model (``suite.models``); the same architecture and tokenizer as ``tiny-llama``.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

RIGHT = 0.5  # probability that a training example's answer is the right one
LR = 3e-3
MAX_PROMPT_TOKENS = 384  # the smoke IGPO runs' max_prompt_tokens: prompts are left-truncated the same way
# per source: (optimizer steps, rows per batch). Long prompts cost most (tiny-llama's vocabulary is nearly
# one token per character), so they get few, small batches: the format is all they need.
SCHEDULE = {"arithmetic": (800, 64), "choice": (80, 32), "countdown": (250, 32), "search": (200, 16),
            "games": (40, 16)}

SMOKE_SETS = ("arithmetic_smoke", "countdown_smoke")  # registered in suite.data


def smoke_records(name: str, split: str = "train") -> list[dict]:
    """The records of a smoke set, from its registry entry's generator (nothing is written)."""
    from . import import_object
    from .data import get_spec

    spec = get_spec(name)
    return list(import_object(spec.generator, name)(**spec.generator_kwargs[split]))


def corpus(seed: int = 0) -> dict[str, list[tuple[str, list[str], list[str]]]]:
    """Per source, (user message, right responses, wrong responses); :func:`warm_up` draws one of them."""
    from .envs.search import PROMPTS
    from .envs.search_data import world_questions
    from .prompts import render
    from .tasks import mmlu

    rng = random.Random(f"warmup-{seed}")
    sources: dict[str, list] = {name: [] for name in SCHEDULE}
    for rec in smoke_records("arithmetic_smoke"):
        gold = int(rec["answers"][0])
        wrong = [gold + d for d in (-3, -2, -1, 1, 2, 3)]
        for template in ("plain", "math"):
            sources["arithmetic"].append((render(template, rec["prompt"]), [f"\\boxed{{{gold}}}"],
                                          [f"\\boxed{{{w}}}" for w in wrong]))
        options = [gold, *rng.sample(wrong, 3)]
        rng.shuffle(options)
        right = mmlu.LETTERS[options.index(gold)]
        sources["choice"].append((mmlu.format_prompt(rec["prompt"], [str(o) for o in options]),
                                  [f"The answer is: {right}"],
                                  [f"The answer is: {x}" for x in mmlu.LETTERS if x != right]))
    for rec in smoke_records("countdown_smoke"):
        a, b = rec["metadata"]["numbers"]
        solution = rec["metadata"]["solution"]
        candidates = {f"{x} {op} {y}" for x, y in ((a, b), (b, a)) for op in "+-*"}
        wrong = sorted(c for c in candidates if eval(c) != rec["metadata"]["target"])  # noqa: S307 (our own digits)
        sources["countdown"].append((rec["prompt"], [f"\\boxed{{{solution}}}"], [f"\\boxed{{{w}}}" for w in wrong]))
    questions = world_questions("train")[:32]
    names = sorted({q["answers"][0] for q in questions})
    for rec in questions:
        prompt = PROMPTS["search_r1"].format(question=rec["prompt"])
        gold = rec["answers"][0]
        query = " ".join(w.strip("?") for w in rec["prompt"].split()[1:] if w[:1].isupper()) or rec["prompt"]
        sources["search"].append((prompt, [f"<answer> {gold} </answer>", f"<search> {query} </search>"],
                                  [f"<answer> {n} </answer>" for n in names if n != gold]))
    sources["games"] = _game_pairs(rng)
    return sources


def _game_pairs(rng: random.Random, n: int = 16) -> list[tuple[str, list[str], list[str]]]:
    """Prompts of Frozen Lake and Snake (``direct`` style, random legal play), any legal move as the answer."""
    from .envs.base import LanguageAgentEnv
    from .envs.registry import game_seeds, make_game

    pairs = []
    for game in ("frozen_lake", "snake"):
        for rec in game_seeds(game=game, split="train", n=n // 2):
            env = LanguageAgentEnv(make_game(game, max_steps=6), fallback="random")
            env.reset(seed=int(rec["metadata"]["seed"]))
            for _ in range(2):  # the first turns of a random game
                legal = env.game.legal_actions()
                moves = [f"<action>{a}</action>" for a in legal]
                pairs.append((env.prompt(style="direct"), moves, moves))
                if env.step(rng.choice(moves)).done:
                    break
    return pairs


def warm_up(model, tokenizer, seed: int = 0, schedule: dict | None = None) -> dict[str, list[float]]:
    """Fine-tune ``model`` in place on :func:`corpus` (loss on the response and its end token only).

    Steps of the sources are interleaved at random; each row's response is drawn at each use (right with
    probability ``RIGHT``). Returns each source's loss per step.
    """
    schedule = schedule or SCHEDULE
    rows: dict[str, list] = {}
    for name, items in corpus(seed).items():
        encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]  # noqa: E731
        rows[name] = []
        for user, right, wrong in items:
            prompt = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                   add_generation_prompt=True)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-MAX_PROMPT_TOKENS:]
            rows[name].append((prompt_ids, [encode(r) for r in right], [encode(w) for w in wrong]))
    rng = random.Random(seed)
    plan = [name for name, (steps, _) in schedule.items() for _ in range(steps)]
    rng.shuffle(plan)
    losses: dict[str, list[float]] = {name: [] for name in schedule}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order everywhere
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
            model.train()
            for name in plan:
                size = schedule[name][1]
                batch = [(p, rng.choice(right if rng.random() < RIGHT else wrong))
                         for p, right, wrong in (rng.choice(rows[name]) for _ in range(size))]
                width = max(len(p) + len(a) for p, a in batch)
                ids = torch.full((len(batch), width), tokenizer.pad_token_id)
                labels = torch.full((len(batch), width), -100)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for i, (p, a) in enumerate(batch):  # right padding: positions start at 0 for every row
                    ids[i, :len(p) + len(a)] = torch.tensor(p + a)
                    labels[i, len(p):len(p) + len(a)] = torch.tensor(a)
                    mask[i, :len(p) + len(a)] = 1
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses[name].append(loss.item())
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return losses


def build(out_dir: Path) -> None:
    """Write ``tiny-llama`` warmed up on :func:`corpus` to ``out_dir`` (same architecture and tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import TINY, resolve_model

    base = resolve_model(TINY)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    warm_up(model, tokenizer)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
