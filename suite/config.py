"""Profiles (``config/<profile>.yaml``) and the training config of one experiment.

A profile declares shared settings (model, data, evaluation) and a set of
experiments (paper, method, model, training data, hyperparameters, eval tasks).
It is checked twice, both before any work starts: against ``config/schema.yaml``
(the JSON schema Snakemake's ``validate`` also uses) and by building every
experiment's :class:`TrainConfig`, which rejects unknown keys, values of the wrong
type or out of range, group sizes below 2 where advantages are group-relative,
and unknown methods, datasets, rewards or tasks, naming the key. The profile's
models, task YAMLs (syntax and datasets) and eval overrides are checked too.
A value from ``train_defaults`` is blamed on ``train_defaults.<key>``; a profile
file with a key twice in one mapping is refused (PyYAML would keep the last).

Types follow :class:`TrainConfig`'s annotations: an integer key takes an integer
(not ``true``, not ``2.5``), a float key any number, and also a numeric string,
converted with a warning: PyYAML reads ``1e-3`` (no decimal point) as a string.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .io import SuiteWarning

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "config" / "schema.yaml"
NON_TRAINING_METHODS = {"base"}  # evaluated as is
# loss keys of a method that sets none (plain GRPO's); a method class's ``defaults`` overrides them
METHOD_DEFAULTS = {"loss_agg": "token-mean", "scale_rewards": True}


class ConfigError(ValueError):
    """A bad profile or training value; ``key`` is the training key at fault, when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


# methods whose advantages do not compare samples within a group (group_size may be 1)
GROUPLESS_METHODS = {"sft"}


@dataclass
class TrainConfig:
    """Everything one training run needs; defaults are plain GRPO's."""

    experiment: str
    method: str = "grpo"
    model: str = "smollm2-135m-instruct"
    # start from the final weights of another experiment of the profile (<runs_dir>/<init_from>/final) rather than
    # `model` (which stays the tokenizer's and the profile's model name); its reference model for the KL term too.
    # A seeded run names the seeded source's run of its own seed; an unseeded source serves every seed.
    init_from: str = ""
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
    # bf16 autocast for forward/backward and a bf16 copy for generation (fp32 master weights); "auto": bf16 where the
    # device computes it natively, fp32 where it would be emulated (suite/precision.py)
    bf16: bool | str = "auto"
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
    # many GPUs and memory (suite/distributed.py, suite/vllm_engine.py, README: distributed training). Left at their
    # defaults these keys are not part of the config hash, so existing runs keep theirs.
    fsdp: bool | str = "auto"  # FSDP2 sharding of the policy and reference: auto = when launched on several ranks
    fsdp_cpu_offload: bool = False  # sharded parameters, gradients and optimizer state on the CPU
    gradient_checkpointing: bool = False  # recompute each decoder layer's activations in the backward pass
    # sampling seeds: step = torch's stream seeded per step (one process); group = one seed per prompt group from
    # (seed, step, prompt), the same samples on any number of ranks; auto = group with several ranks or with vLLM,
    # step for one process generating with HF (as before)
    generation_seed: str = "auto"
    vllm_gpu_memory_utilization: float = 0.3  # vLLM's share of each GPU (weights + KV cache)
    vllm_max_model_len: int = 4096  # prompt + completion tokens; a longer context ends its episode as truncated
    vllm_tensor_parallel_size: int = 1
    vllm_enable_sleep_mode: bool = True  # vLLM frees its memory during the update and wakes for generation
    # bookkeeping
    save_every: int = 10
    keep_checkpoints: int = 2
    log_completions: int = 2  # completions written to the samples log per step
    # live metrics (suite/tracking.py): also stream each step's metrics to "tensorboard" and/or "wandb" (offline);
    # as TRL's: a list, one name, "all" or "none". A logging sink, not the run's identity: never in the hash
    report_to: list[str] | str | None = field(default_factory=list)
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
        _check_types(self)
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
        _check(self, "fsdp", self.fsdp in (True, False, "auto"), "must be true, false or auto")
        _choice(self, "generation_seed", ["auto", "step", "group"])
        _check(self, "vllm_gpu_memory_utilization", 0 < self.vllm_gpu_memory_utilization < 1, "must be in (0, 1)")
        for key in ("vllm_max_model_len", "vllm_tensor_parallel_size"):
            _check(self, key, getattr(self, key) >= 1, "must be >= 1")
        _check(self, "bf16", self.bf16 in (True, False, "auto"), "must be true, false or auto")

        from .algos import METHODS
        from .prompts import TEMPLATES
        from .rewards import REWARDS, VERIFIERS

        _choice(self, "method", sorted(METHODS))
        if self.method not in GROUPLESS_METHODS:
            _check(self, "group_size", self.group_size >= 2,
                   f"must be >= 2 for method {self.method!r}: its advantages compare each sample with its group's "
                   "mean, so a group of one always gets advantage 0 and trains nothing")
        _check_dataset(self)
        _choice(self, "prompt_template", sorted(TEMPLATES))
        _choice(self, "reward", sorted(REWARDS))
        _choice(self, "verifier", sorted(VERIFIERS))
        from .tracking import normalize_report_to

        self.report_to = normalize_report_to(self.report_to, self.experiment)

    def hash(self) -> str:
        d = dataclasses.asdict(self)
        d.pop("report_to")  # where metrics are streamed does not change what a run computes
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for key in HASH_IF_SET:  # keys added after runs existed: part of the hash only when set to another value
            if d[key] == defaults[key]:
                del d[key]
        return config_hash(d)

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
        raise ConfigError(f"experiment {cfg.experiment!r}: train.{key} = {getattr(cfg, key)!r} {why}", key=key)


def _choice(cfg: TrainConfig, key: str, choices: list[str]) -> None:
    _check(cfg, key, getattr(cfg, key) in choices, f"is not one of {choices}")


# --- types -----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved: leave that class's types unchecked
        return {}


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is tuple:
        return f"a list of {len(args)} numbers" if all(a is float for a in args) else f"a list of {len(args)}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a mapping", list: "a list"}.get(origin or annotation, str(annotation))


def coerce_value(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as ``annotation`` asks (``int``, ``float``, ``bool``, ``str``, tuples, lists, mappings,
    ``X | None``); a numeric string for a float is converted with a :class:`SuiteWarning`; anything else
    of the wrong type raises :class:`ConfigError` naming ``where``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)

    def bad(extra: str = "") -> ConfigError:
        return ConfigError(f"{where} = {value!r} must be {_type_name(annotation)}{extra}",
                           key=where.rpartition(".")[2].partition("[")[0])

    if annotation is Any or annotation is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in (a for a in args if a is not type(None)):
            try:
                return coerce_value(value, arm, where)
            except ConfigError:
                continue
        raise bad(f", got {type(value).__name__}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise bad(f", got {type(value).__name__} (write true or false, unquoted)")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, bool):
            raise bad(", not a boolean (write a whole number, e.g. 3)")
        if isinstance(value, float):
            raise bad(" (a whole number: no fractional part)")
        raise bad(f", got {type(value).__name__} (write a whole number, unquoted)")
    if annotation is float:
        if isinstance(value, bool):
            raise bad(", not a boolean")
        if isinstance(value, (int, float)):
            return value  # an int stays an int: converting it would change the config hash of existing runs
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            number = float(value)
            warnings.warn(f"{where} = {value!r} is a string in YAML (PyYAML reads a number with an exponent but no "
                          f"decimal point, like 1e-3, as text); read as {number!r}. Write it with a decimal point "
                          f"(1.0e-3) or as {number!r} to silence this", SuiteWarning, stacklevel=2)
            return number
        raise bad(f", got {type(value).__name__}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise bad(f", got {type(value).__name__} (quote it)")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or (args and args[-1] is not Ellipsis and len(value) != len(args)):
            raise bad()
        arms = [args[0]] * len(value) if args and args[-1] is Ellipsis else list(args)
        return tuple(coerce_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, arms)))
    if origin is list or annotation is list:
        if not isinstance(value, list):
            raise bad()
        return [coerce_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise bad()
        return value
    return value


def coerce_mapping(d: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """``d`` with each known key's value coerced to ``cls``'s annotation; ``where`` prefixes the key in errors."""
    hints = _hints(cls)
    return {k: coerce_value(v, hints[k], f"{where}.{k}") if k in hints else v for k, v in d.items()}


def _check_types(cfg: TrainConfig) -> None:
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if f.name in hints:
            value = coerce_value(getattr(cfg, f.name), hints[f.name], f"experiment {cfg.experiment!r}: train.{f.name}")
            setattr(cfg, f.name, value)


def _check_dataset(cfg: TrainConfig) -> None:
    """The training data is a registered dataset or one a task YAML declares inline."""
    from .data import DatasetSpecError, get_spec

    try:
        spec = get_spec(cfg.train_dataset)
    except (FileNotFoundError, DatasetSpecError) as err:
        raise ConfigError(f"experiment {cfg.experiment!r}: train.train_dataset = {cfg.train_dataset!r}: {err}",
                          key="train_dataset") from None
    _check(cfg, "train_split", cfg.train_split in spec.splits,
           f"is not a split of dataset {cfg.train_dataset!r}; it has {spec.splits}")


# TrainConfig keys that enter the config hash only when they differ from their default (TrainConfig.hash)
HASH_IF_SET = ("fsdp", "fsdp_cpu_offload", "gradient_checkpointing", "generation_seed", "vllm_gpu_memory_utilization",
               "vllm_max_model_len", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode", "init_from")


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
    # what the training job asks of the scheduler (Snakemake resources / SLURM): gpus, threads, mem_mb, runtime
    # (minutes); the profile's ``resources.train`` with the experiment's ``resources`` over it (resolve_resources)
    resources: dict[str, Any] = field(default_factory=lambda: dict(RESOURCE_DEFAULTS))
    # the same for each evaluation of this experiment: ``resources.evaluate``, then ``resources.evaluate`` of the
    # experiment
    eval_resources: dict[str, Any] = field(default_factory=lambda: dict(RESOURCE_DEFAULTS))
    # seeds: an experiment declared with ``seeds: [0, 1, 2]`` is expanded into one experiment per seed, named
    # ``<name>_s<seed>`` (train.seed = that seed); ``group`` is the declared name (== name without seeds), ``seed``
    # the seed (None without seeds) and ``group_label`` the declared label, which the report's aggregated rows show
    group: str = ""
    seed: int | None = None
    group_label: str = ""

    def __post_init__(self):
        self.group = self.group or self.name
        self.group_label = self.group_label or self.label


# a job's resources when the profile says nothing: a CPU job on one core (Snakemake caps threads at --cores)
RESOURCE_DEFAULTS = {"gpus": 0, "threads": 1, "mem_mb": 4000, "runtime": 60}
RESOURCE_KEYS = tuple(RESOURCE_DEFAULTS)


def resolve_resources(raw: dict[str, Any], exp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training job, evaluation job) resources of one experiment: the built-in defaults, then the profile's
    ``resources.train`` / ``resources.evaluate``, then the experiment's own ``resources`` (its flat keys for the
    training job, its ``evaluate`` mapping for its evaluations). The schema has checked keys and ranges."""
    profile = raw.get("resources") or {}
    own = dict(exp.get("resources") or {})
    own_eval = own.pop("evaluate", None) or {}
    train = {**RESOURCE_DEFAULTS, **(profile.get("train") or {}), **own}
    evaluate = {**RESOURCE_DEFAULTS, **(profile.get("evaluate") or {}), **own_eval}
    return train, evaluate


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

    def groups(self, paper: str | None = None) -> dict[str, list[Experiment]]:
        """Experiments by group (the declared name: one experiment per seed of a seeded one, else itself), in
        profile order; ``paper``: that paper's only."""
        groups: dict[str, list[Experiment]] = {}
        for exp in self.experiments.values() if paper is None else self.of_paper(paper):
            groups.setdefault(exp.group, []).append(exp)
        return groups

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
    """Validate a profile mapping and build every experiment (fails before any work): the schema, every
    experiment's training config (keys, types, ranges, group size, method options, dataset), its model name,
    and every eval task's YAML (syntax, dataset) and overrides."""
    _check_seeds(raw, source)
    validate_schema(raw, source)
    tasks = set(raw["eval"]["tasks"])
    defaults = _training_defaults(raw.get("train_defaults") or {}, source)
    experiments = {}
    seeded = {name: list(exp["seeds"]) for name, exp in raw["experiments"].items() if exp.get("seeds") is not None}
    for name, exp in raw["experiments"].items():
        model = exp.get("model", raw["model"])
        unknown_tasks = sorted(set(exp["eval_tasks"]) - tasks)
        if unknown_tasks:
            raise ConfigError(f"{source}: experiments.{name}.eval_tasks: {unknown_tasks} not declared in eval.tasks")
        # seeds: one experiment per seed, <name>_s<seed>, with train.seed = that seed (_check_seeds checked them)
        members = [(name, None)] if name not in seeded else [(f"{name}_s{seed}", seed) for seed in seeded[name]]
        trains = {}
        for member, seed in members:
            if seed is not None and (member in raw["experiments"] or member in experiments):
                raise ConfigError(f"{source}: experiments.{name}.seeds: seed {seed} makes the experiment {member!r}, "
                                  "which the profile already has: rename one of them")
            trains[member] = None
            if exp["method"] not in NON_TRAINING_METHODS:
                trains[member] = _build_train(raw, name, member, seed, exp, model, defaults, seeded, source)
        _check_model(name, exp, model, source)
        papers = [exp["paper"]] if isinstance(exp["paper"], str) else list(exp["paper"])
        resources, eval_resources = resolve_resources(raw, exp)
        label = exp.get("label", name)
        for member, seed in members:
            train = trains[member]
            experiments[member] = Experiment(name=member, papers=papers, method=exp["method"], model=model,
                                             train=train, eval_tasks=list(exp["eval_tasks"]),
                                             label=label if seed is None else f"{label} (seed {seed})",
                                             resources=dict(resources), eval_resources=dict(eval_resources),
                                             group=name, seed=seed, group_label=label)
    _check_init_from(experiments, source)
    _check_tasks_exist(tasks, source)
    for task in sorted(tasks):
        _check_task(task, raw["eval"]["tasks"][task] or {}, source)
    _check_declarations(source)
    return Profile(path=Path(source), raw=raw, experiments=experiments)


def _check_seeds(raw: dict[str, Any], source: str) -> None:
    """``experiments.<name>.seeds``: a non-empty list of distinct integers >= 0, on a trained experiment only
    (checked before the schema, whose messages say less)."""
    experiments = raw.get("experiments") if isinstance(raw, dict) else None
    if not isinstance(experiments, dict):
        return
    for name, exp in experiments.items():
        if not isinstance(exp, dict) or "seeds" not in exp:
            continue
        seeds, where = exp["seeds"], f"{source}: experiments.{name}.seeds"
        if (not isinstance(seeds, list) or not seeds
                or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds)):
            raise ConfigError(f"{where} = {seeds!r} must be a non-empty list of integers >= 0, e.g. seeds: [0, 1, 2]",
                              key="seeds")
        repeated = sorted({x for x in seeds if seeds.count(x) > 1})
        if repeated:
            raise ConfigError(f"{where} = {seeds!r} repeats {repeated}: each seed names one run; list each once",
                              key="seeds")
        if exp.get("method") in NON_TRAINING_METHODS:
            raise ConfigError(f"{where}: method {exp['method']!r} is not trained, so a seed changes nothing (its "
                              "evaluations sample with the profile's eval.seed): remove seeds from this experiment",
                              key="seeds")
        if isinstance(exp.get("train"), dict) and "seed" in exp["train"]:
            raise ConfigError(f"{where} and experiments.{name}.train.seed are both set: seeds gives each run its "
                              "train.seed; remove train.seed", key="seeds")


def _check_init_from(experiments: dict[str, Experiment], source: str) -> None:
    """``train.init_from`` names another trained experiment of the profile, of the same model, with no cycle."""
    for name, exp in experiments.items():
        start = exp.train.init_from if exp.train is not None else ""
        if not start:
            continue
        where = f"{source}: experiments.{exp.group}.train.init_from = {start!r}"
        origin = experiments.get(start)
        if origin is None or origin.train is None:
            trained = sorted(n for n, e in experiments.items() if e.train is not None and n != name)
            raise ConfigError(f"{where} names no trained experiment of this profile; trained ones: {trained}",
                              key="init_from")
        if origin.model != exp.model:
            raise ConfigError(f"{where}: that run trains model {origin.model!r}, this one names {exp.model!r}; "
                              "give both the same model (its tokenizer reads the weights)", key="init_from")
        seen, cur = [name], start
        while cur:
            if cur in seen:
                raise ConfigError(f"{where}: the chain {' -> '.join(seen + [cur])} is a cycle", key="init_from")
            seen.append(cur)
            cur = experiments[cur].train.init_from if cur in experiments and experiments[cur].train else ""


def _own_seed_run(run: str, where: str, name: str, seed: int | None, seeded: dict[str, list[int]], source: str,
                  fix: str, key: str | None = None) -> str:
    """Another experiment's run that run ``name`` (of ``seed``) reads: ``<run>_s<seed>`` when ``run`` is seeded (an
    error when it has no such seed), else ``run`` itself."""
    if run not in seeded:
        return run
    if seed not in seeded[run]:
        raise ConfigError(f"{source}: {where} = {run!r} names an experiment with seeds {seeded[run]}: give {name!r} "
                          f"seeds from that list{fix}", key=key)
    return f"{run}_s{seed}"


def _build_train(raw: dict[str, Any], name: str, member: str, seed: int | None, exp: dict[str, Any], model: str,
                 defaults: dict[str, Any], seeded: dict[str, list[int]], source: str) -> TrainConfig:
    """The training config of experiment ``name`` (run ``member``: ``name`` itself, or ``<name>_s<seed>`` of its
    seeds); an error names the declared experiment's keys."""
    own = coerce_mapping(exp.get("train") or {}, TrainConfig, f"{source}: experiments.{name}.train")
    merged = {**defaults, **own}
    merged["algo"] = {**(defaults.get("algo") or {}), **(own.get("algo") or {})}
    if seed is not None:
        merged["seed"] = seed
    # a seeded run reads (traces_from) or starts from (init_from) the source's run of its own seed
    if isinstance(merged["algo"].get("traces_from"), str):
        merged["algo"]["traces_from"] = _own_seed_run(
            merged["algo"]["traces_from"], f"experiments.{name}.train.algo.traces_from", name, seed, seeded, source,
            ", so that each of its runs reads the run of its own seed")
    if isinstance(merged.get("init_from"), str):
        merged["init_from"] = _own_seed_run(
            merged["init_from"], f"experiments.{name}.train.init_from", name, seed, seeded, source,
            " (each run starts from the run of its own seed), or start from an unseeded experiment", key="init_from")
    try:
        train = TrainConfig.from_dict({**merged, "experiment": member, "method": exp["method"], "model": model,
                                       "data_dir": raw["data"]["dir"]})
        _check_algo_options(train, source)
    except ConfigError as err:
        if member != name:  # name the declared experiment, not its expanded run
            text = str(err).replace(f"experiments.{member}.", f"experiments.{name}.")
            err = ConfigError(text.replace(f"experiment {member!r}", f"experiment {name!r}"), key=err.key)
        if str(err).startswith(f"{source}: experiments.{name}.train.algo"):
            raise err from None
        raise _blame_defaults(err, name, own, defaults, source) from None
    return train


def _training_defaults(defaults: dict[str, Any], source: str) -> dict[str, Any]:
    """``train_defaults`` with its keys and types checked, naming ``train_defaults.<key>``."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise ConfigError(f"{source}: train_defaults: unknown training key(s) {unknown}; valid keys: {sorted(known)}")
    return coerce_mapping(defaults, TrainConfig, f"{source}: train_defaults")


def _blame_defaults(err: ConfigError, name: str, own: dict, defaults: dict, source: str) -> ConfigError:
    """A bad value that came from ``train_defaults`` (the experiment does not set it) is reported there."""
    key = err.key
    if key is None or key not in defaults or key in own:  # the experiment's own value: name its path in the file
        text = str(err)
        for old, new in ((f"experiment {name!r}: train.", f"experiments.{name}.train."),
                         (f"experiment {name!r}: unknown", f"experiments.{name}.train: unknown")):
            if text.startswith(old):
                text = new + text[len(old):]
        return ConfigError(f"{source}: {text}", key=key)
    text = str(err).replace(f"experiment {name!r}: train.{key}", f"{source}: train_defaults.{key}", 1)
    return ConfigError(f"{text} (set in train_defaults; found while building experiment {name!r}, "
                       "which does not override it)", key=key)


# --- profile files: a key twice in one mapping is an error -----------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping (it would keep the last
    silently); ``<<`` merges of anchors may still be overridden."""

    def construct_document(self, node):
        _check_unique_keys(node, getattr(self, "name", "<yaml>"), set())
        return super().construct_document(node)


def _check_unique_keys(node, name: str, seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                key = (key_node.tag, key_node.value)
                if key in first:
                    raise ConfigError(
                        f"{name}, line {line}: key {key_node.value!r} appears twice in one mapping (first at line "
                        f"{first[key]}); YAML would keep only the last one silently: remove or rename one of them")
                first[key] = line
            _check_unique_keys(value_node, name, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_unique_keys(item, name, seen)


class _TaskYamlLoader(_UniqueKeyLoader):
    """Task YAMLs: duplicate keys refused, ``!function`` tags read as None (nothing is imported)."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def load_yaml_file(path: str | Path, loader=_UniqueKeyLoader) -> Any:
    """A YAML file; a syntax error or a duplicate key raises :class:`ConfigError` naming the file and line."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = "; ".join(x for x in (err.context, err.problem) if x)
        raise ConfigError(f"{where}: not valid YAML ({problem}): fix the syntax there") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}): fix the syntax") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from None


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile {path} does not exist; profiles: {sorted(p.name for p in (REPO / 'config').glob('*.yaml'))}")
    raw = load_yaml_file(path)
    return parse_profile(raw, str(path))


def _check_algo_options(train: TrainConfig, source: str) -> None:
    from .algos import get_method

    where = f"{source}: experiments.{train.experiment}.train.algo"
    options_cls = getattr(get_method(train.method), "Options", None)
    if options_cls is None:
        if train.algo:
            raise ConfigError(f"{where}: method {train.method!r} takes no options")
        return
    known = {f.name for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(train.algo) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; valid: {sorted(known)}")
    train.algo = coerce_mapping(train.algo, options_cls, where)
    try:
        options_cls(**train.algo)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


# --- models, task YAMLs, datasets, eval overrides --------------------------------------------------------

def _check_model(name: str, exp: dict, model: str, source: str) -> None:
    """The model resolves locally (embedded, test model, checkpoint directory) or is a hub id; the game tasks'
    reference policies (``random``, ``planner``) are models only for an untrained experiment of game tasks."""
    from .evaluate import CUSTOM_TASKS
    from .models import ModelNotFoundError, check_model_name

    if exp["method"] in NON_TRAINING_METHODS and all(t in CUSTOM_TASKS for t in exp["eval_tasks"]):
        from .envs.registry import REFERENCES

        if model in REFERENCES:
            return
    try:
        check_model_name(model)
    except ModelNotFoundError as err:
        key = f"experiments.{name}.model" if "model" in exp else f"model (the profile's, used by experiment {name!r})"
        raise ConfigError(f"{source}: {key}: {err}") from None


def tasks_dir() -> Path:
    from .evaluate import TASKS_DIR

    return Path(TASKS_DIR)


def check_task_yaml(task: str, folder: str | Path | None = None) -> dict[str, Any]:
    """A task's YAML with its ``include`` chain merged (as lm-eval merges it); a syntax error or a duplicate
    key names the file and line, where lm-eval's task index would only leave the task out ("unknown task")."""
    folder = Path(folder) if folder is not None else tasks_dir()
    path = folder / f"{task}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown task {task!r}: no {path}")
    cfg: dict[str, Any] = {}
    seen: set[Path] = set()
    while path is not None:
        if path in seen:
            raise ConfigError(f"task {task!r}: {path} includes itself (an include cycle)")
        seen.add(path)
        if not path.is_file():
            raise ConfigError(f"task {task!r}: the included file {path} does not exist")
        layer = load_yaml_file(path, _TaskYamlLoader) or {}
        if not isinstance(layer, dict):
            raise ConfigError(f"{path}: a task YAML must be a mapping of lm-eval task keys, got {type(layer).__name__}")
        cfg = {**layer, **cfg}
        include = layer.get("include")
        path = path.parent / include if isinstance(include, str) else None
    cfg["__file__"] = str(folder / f"{task}.yaml")
    return cfg


def _check_task(task: str, settings: dict[str, Any], source: str) -> None:
    from .evaluate import CUSTOM_TASKS

    check_overrides(task, settings.get("overrides"), where=f"{source}: eval.tasks.{task}.overrides")
    if task in CUSTOM_TASKS:
        return
    cfg = check_task_yaml(task)
    _check_task_dataset(task, cfg)


def _check_task_dataset(task: str, cfg: dict[str, Any]) -> None:
    """The task's data is a registered dataset or one declared inline (here or in another task YAML),
    and has the split the task reads."""
    from .data import DatasetSpecError, get_spec, spec_from_dict

    path = cfg["__file__"]
    kwargs = cfg.get("dataset_kwargs") or {}
    if not isinstance(kwargs, dict) or not kwargs.get("dataset"):
        raise ConfigError(f"{path}: dataset_kwargs.dataset is missing: name the dataset the task reads "
                          "(a registered one, or declare it inline with dataset_kwargs.spec)")
    name, split = str(kwargs["dataset"]), str(kwargs.get("split", "test"))
    try:
        spec = spec_from_dict(name, kwargs["spec"], source=path) if kwargs.get("spec") else get_spec(name)
    except (FileNotFoundError, DatasetSpecError) as err:
        raise ConfigError(f"{path}: dataset_kwargs.dataset = {name!r}: {err}") from None
    if split not in spec.splits:
        raise ConfigError(f"{path}: dataset_kwargs.split = {split!r} is not a split of dataset {name!r}; "
                          f"it has {spec.splits}")


@functools.lru_cache(maxsize=1)
def lm_eval_task_keys() -> frozenset[str]:
    """The keys an lm-eval task config takes (``lm_eval.api.task.TaskConfig``). The suite's own settings
    travel inside them: ``dataset_kwargs`` (dataset, split, spec) and ``metadata`` (lm, lm_module, lm_args)."""
    from lm_eval.api.task import TaskConfig

    return frozenset(f.name for f in dataclasses.fields(TaskConfig))


def check_overrides(task: str, overrides: Any, where: str) -> None:
    """A profile's (or ``--overrides``') settings for one task: lm-eval task config keys (a game task: the
    game evaluator's settings), with ``repeats`` a positive integer and the mappings mappings."""
    import difflib

    from .evaluate import CUSTOM_TASKS

    if overrides is None:
        return
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where} = {overrides!r} must be a mapping of task keys, e.g. {{repeats: 4}}")
    if task in CUSTOM_TASKS:
        from importlib import import_module

        settings = getattr(import_module(CUSTOM_TASKS[task].partition(":")[0]), "settings", None)
        if settings is not None:
            try:
                settings(task, overrides)
            except (ValueError, TypeError) as err:
                raise ConfigError(f"{where}: {err}") from None
        return
    allowed = lm_eval_task_keys()
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        hints = [f"{m[0]!r} for {k!r}" for k in unknown if (m := difflib.get_close_matches(k, allowed, n=1))]
        raise ConfigError(f"{where}: unknown key(s) {unknown}" + (f" (did you mean {', '.join(hints)}?)" if hints else "")
                          + f"; an override takes lm-eval's task config keys: {', '.join(sorted(allowed))}")
    repeats = overrides.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"{where}.repeats = {repeats!r} must be an integer >= 1 (samples per problem)")
    for key in ("generation_kwargs", "metadata", "dataset_kwargs"):
        if key in overrides and not isinstance(overrides[key], dict):
            raise ConfigError(f"{where}.{key} = {overrides[key]!r} must be a mapping")
    gen = overrides.get("generation_kwargs") or {}
    if "max_gen_toks" in gen and (not isinstance(gen["max_gen_toks"], int) or isinstance(gen["max_gen_toks"], bool)
                                  or gen["max_gen_toks"] < 1):
        raise ConfigError(f"{where}.generation_kwargs.max_gen_toks = {gen['max_gen_toks']!r} must be an integer >= 1")
    for key in ("temperature", "top_p"):
        value = gen.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{where}.generation_kwargs.{key} = {value!r} must be a number >= 0")


def _check_declarations(source: str) -> None:
    """Two task files declaring one dataset name with different specs stop the profile before any job
    (after each task's own YAML was checked, so a syntax error is reported as one, with its line)."""
    from .data import DatasetSpecError, declared_specs

    try:
        declared_specs()
    except DatasetSpecError as err:
        raise ConfigError(f"{source}: {err}") from None


def _check_tasks_exist(tasks: set[str], source: str) -> None:
    from .evaluate import CUSTOM_TASKS, TASKS_DIR

    defined = {p.stem for p in TASKS_DIR.glob("*.yaml") if not p.stem.startswith("_")} | set(CUSTOM_TASKS)
    missing = sorted(tasks - defined)
    if missing:
        raise ConfigError(f"{source}: eval.tasks: no task YAML in {TASKS_DIR} for {missing}; defined: {sorted(defined)}")

