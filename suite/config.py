"""Profiles (``config/<profile>.yaml``) and the training config of one experiment.

A profile declares shared settings (model, data, evaluation) and a set of
experiments (paper, method, model, training data, hyperparameters, eval tasks).
It is checked twice, both before any work starts: against ``config/schema.yaml``
(the JSON schema Snakemake's ``validate`` also uses) and by building every
experiment's :class:`TrainConfig`, which rejects unknown keys, out-of-range
values and unknown methods, datasets, rewards or tasks, naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "config" / "schema.yaml"
NON_TRAINING_METHODS = {"base"}  # evaluated as is
# loss keys of a method that sets none (plain GRPO's); a method class's ``defaults`` overrides them
METHOD_DEFAULTS = {"loss_agg": "token-mean", "scale_rewards": True}


class ConfigError(ValueError):
    pass


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults are plain GRPO's."""

    experiment: str
    method: str = "grpo"
    model: str = "smollm2-135m-instruct"
    seed: int = 0
    # data and prompts
    train_dataset: str = "arithmetic_2d"
    train_split: str = "train"
    data_dir: str = "data"
    prompt_template: str = "math"
    max_prompt_tokens: int = 512
    # rewards: `reward` is what the policy optimises, `verifier` says what is correct
    reward: str = "math_verify"
    verifier: str = "math_verify"
    # rollout
    steps: int = 30
    prompts_per_step: int = 4
    group_size: int = 4
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    engine: str = "auto"  # hf | vllm | auto
    generation_batch_size: int = 64
    # optimisation
    lr: float = 1e-6
    lr_warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | cosine
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    micro_batch_size: int = 8
    ppo_epochs: int = 1
    bf16: bool = True  # bf16 autocast for forward/backward and generation (fp32 master weights)
    # GRPO loss
    # divide group-centred rewards by the group std; None: the method's default (METHOD_DEFAULTS, Method.defaults)
    scale_rewards: bool | None = None
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    kl_coef: float = 0.0  # beta; no reference model is loaded when 0
    kl_estimator: str = "k3"  # k3 | k2
    # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm | episode-step-token-mean (suite/losses.py);
    # None: the method's default (METHOD_DEFAULTS, overridden by the method class's ``defaults``)
    loss_agg: str | None = None
    # bookkeeping
    save_every: int = 10
    keep_checkpoints: int = 2
    log_completions: int = 2  # completions written to the samples log per step
    algo: dict[str, Any] = field(default_factory=dict)  # method-specific options

    def __post_init__(self):
        if isinstance(self.adam_betas, list):
            self.adam_betas = tuple(self.adam_betas)
        self.fill_method_defaults()
        self.validate()
        # rollouts are sampled from the top-p truncated distribution, but the update scores tokens (ratio, KL)
        # under the full one: a silent mismatch, so it is refused rather than trained
        _check(self, "top_p", self.top_p == 1.0,
               "is not supported for training: rollouts would be drawn from the top-p truncated distribution "
               "while the update scores their tokens under the full one; set train.top_p: 1.0")

    def fill_method_defaults(self) -> None:
        """Fill the loss keys left unset (None) with the method's own: the class attribute ``defaults`` of
        ``suite.algos.<method>`` over :data:`METHOD_DEFAULTS`. A value the profile sets wins."""
        from .algos import METHODS, get_method

        defaults = dict(METHOD_DEFAULTS)
        if self.method in METHODS:  # an unknown method is reported by validate()
            defaults.update(getattr(get_method(self.method), "defaults", None) or {})
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    def validate(self) -> None:
        positive = ["steps", "prompts_per_step", "group_size", "max_new_tokens", "micro_batch_size",
                    "ppo_epochs", "save_every", "max_prompt_tokens", "generation_batch_size", "keep_checkpoints"]
        for key in positive:
            _check(self, key, getattr(self, key) >= 1, "must be >= 1")
        _check(self, "lr", 0 < self.lr < 1, "must be in (0, 1)")
        _check(self, "temperature", self.temperature > 0, "must be > 0")
        _check(self, "top_p", 0 < self.top_p <= 1, "must be in (0, 1]")
        for key in ("clip_eps_low", "clip_eps_high"):
            _check(self, key, 0 <= getattr(self, key) < 1, "must be in [0, 1)")
        _check(self, "kl_coef", self.kl_coef >= 0, "must be >= 0")
        _check(self, "max_grad_norm", self.max_grad_norm > 0, "must be > 0")
        _check(self, "weight_decay", self.weight_decay >= 0, "must be >= 0")
        _check(self, "lr_warmup_steps", 0 <= self.lr_warmup_steps <= self.steps, "must be in [0, steps]")
        _choice(self, "loss_agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm",
                                   "episode-step-token-mean"])
        _choice(self, "kl_estimator", ["k3", "k2"])
        _choice(self, "engine", ["auto", "hf", "vllm"])
        _choice(self, "lr_schedule", ["constant", "cosine"])

        from .algos import METHODS
        from .data import REGISTRY
        from .prompts import TEMPLATES
        from .rewards import REWARDS, VERIFIERS

        _choice(self, "method", sorted(METHODS))
        _choice(self, "train_dataset", sorted(REGISTRY))
        _choice(self, "prompt_template", sorted(TEMPLATES))
        _choice(self, "reward", sorted(REWARDS))
        _choice(self, "verifier", sorted(VERIFIERS))

    def hash(self) -> str:
        return config_hash(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"experiment {d.get('experiment')!r}: unknown training key(s) {unknown}; "
                f"valid keys: {sorted(known)}"
            )
        return cls(**d)


def _check(cfg: TrainConfig, key: str, ok: bool, why: str) -> None:
    if not ok:
        raise ConfigError(f"experiment {cfg.experiment!r}: train.{key} = {getattr(cfg, key)!r} {why}")


def _choice(cfg: TrainConfig, key: str, choices: list[str]) -> None:
    _check(cfg, key, getattr(cfg, key) in choices, f"is not one of {choices}")


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Experiment:
    name: str
    papers: list[str]
    method: str
    model: str
    train: TrainConfig | None  # None for the untrained base model
    eval_tasks: list[str]
    label: str


@dataclass
class Profile:
    path: Path
    raw: dict[str, Any]
    experiments: dict[str, Experiment]

    @property
    def name(self) -> str:
        return self.raw["profile"]

    def experiment(self, name: str) -> Experiment:
        try:
            return self.experiments[name]
        except KeyError:
            raise ConfigError(f"{self.path}: no experiment {name!r}; has {sorted(self.experiments)}") from None

    def eval_settings(self, task: str) -> dict[str, Any]:
        return self.raw["eval"]["tasks"][task]

    def papers(self) -> list[str]:
        return sorted({p for e in self.experiments.values() for p in e.papers})

    def of_paper(self, paper: str) -> list[Experiment]:
        return [e for e in self.experiments.values() if paper in e.papers]

    def eval_owner(self, name: str) -> str:
        """The experiment whose evaluation directory holds ``name``'s results.

        A trained experiment owns its results. Untrained experiments of the same model score the same
        (a task's eval settings are profile-wide), so they share the first such experiment's results
        and each task is evaluated once per model, not once per paper.
        """
        exp = self.experiment(name)
        if exp.train is not None:
            return name
        return next(e.name for e in self.experiments.values() if e.train is None and e.model == exp.model)

    def eval_path(self, results: Path, name: str, task: str) -> Path:
        return Path(results) / "evals" / self.eval_owner(name) / f"{task}.json"


def validate_schema(raw: dict, source: str) -> None:
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.path)) or '<top>'}: {e.message}" for e in errors]
        raise ConfigError(f"{source} is not a valid profile:\n" + "\n".join(lines))


def parse_profile(raw: dict[str, Any], source: str = "<profile>") -> Profile:
    """Validate a profile mapping and build every experiment (fails before any work)."""
    validate_schema(raw, source)
    tasks = set(raw["eval"]["tasks"])
    defaults = raw.get("train_defaults", {})
    experiments = {}
    for name, exp in raw["experiments"].items():
        model = exp.get("model", raw["model"])
        unknown_tasks = sorted(set(exp["eval_tasks"]) - tasks)
        if unknown_tasks:
            raise ConfigError(f"{source}: experiments.{name}.eval_tasks: {unknown_tasks} not declared in eval.tasks")
        train = None
        if exp["method"] not in NON_TRAINING_METHODS:
            merged = {**defaults, **exp.get("train", {})}
            merged["algo"] = {**defaults.get("algo", {}), **exp.get("train", {}).get("algo", {})}
            train = TrainConfig.from_dict({**merged, "experiment": name, "method": exp["method"], "model": model,
                                           "data_dir": raw["data"]["dir"]})
            _check_algo_options(train, source)
        papers = [exp["paper"]] if isinstance(exp["paper"], str) else list(exp["paper"])
        experiments[name] = Experiment(name=name, papers=papers, method=exp["method"], model=model,
                                       train=train, eval_tasks=list(exp["eval_tasks"]),
                                       label=exp.get("label", name))
    _check_tasks_exist(tasks, source)
    return Profile(path=Path(source), raw=raw, experiments=experiments)


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile {path} does not exist; profiles: {sorted(p.name for p in (REPO / 'config').glob('*.yaml'))}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return parse_profile(raw, str(path))


def _check_algo_options(train: TrainConfig, source: str) -> None:
    from .algos import get_method

    options_cls = getattr(get_method(train.method), "Options", None)
    if options_cls is None:
        if train.algo:
            raise ConfigError(f"{source}: experiments.{train.experiment}.train.algo: method {train.method!r} takes no options")
        return
    known = {f.name for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(train.algo) - known)
    if unknown:
        raise ConfigError(f"{source}: experiments.{train.experiment}.train.algo: unknown option(s) {unknown}; valid: {sorted(known)}")
    options_cls(**train.algo)


def _check_tasks_exist(tasks: set[str], source: str) -> None:
    from .evaluate import CUSTOM_TASKS, TASKS_DIR

    defined = {p.stem for p in TASKS_DIR.glob("*.yaml") if not p.stem.startswith("_")} | set(CUSTOM_TASKS)
    missing = sorted(tasks - defined)
    if missing:
        raise ConfigError(f"{source}: eval.tasks: no task YAML in {TASKS_DIR} for {missing}; defined: {sorted(defined)}")
