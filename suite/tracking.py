"""Live metrics: each training step's metrics streamed to TensorBoard and/or Weights & Biases (``train.report_to``).

``metrics.jsonl`` stays the record the reports, the regression check and resume read; these sinks are views of
the same rows for a researcher watching a run: TensorBoard event files in ``<run>/tensorboard/``, a W&B run in
offline mode in ``<run>/wandb/`` (``wandb sync <run>/wandb/offline-run-*`` uploads it later). Every numeric
value of a step's row goes out as ``train/<key>`` at that step (the row's ``step``, 1-based).

``report_to`` takes what TRL's ``report_to`` takes: a list of names, one name, ``"none"`` or ``"all"``
(:func:`normalize_report_to`). ``"all"`` means every sink whose package is installed, as in TRL; a sink named
explicitly whose package is missing stops the trainer at its start, naming the ``pip install`` that fixes it.

A resumed run starts a new event file at the step it resumes from, written with ``purge_step`` = that step + 1:
TensorBoard's readers (the UI and ``EventAccumulator``) then hide whatever an earlier attempt had logged from that
step on, so each step shows once, as the JSONL log (which the trainer truncates to the resume step) does. A fresh
start in an old run directory purges from step 1 the same way. A resumed W&B offline run is a new W&B run that
continues the step count (W&B refuses steps going backwards within one run).
"""

from __future__ import annotations

import dataclasses
import importlib
import numbers
import warnings
from pathlib import Path
from typing import Any

from .config import ConfigError
from .io import SuiteWarning

SINKS = ("tensorboard", "wandb")
INSTALL = {"tensorboard": "pip install tensorboard (or pip install -e '.[tracking]')", "wandb": "pip install wandb"}


def normalize_report_to(value: Any, experiment: str = "?") -> list[str]:
    """``value`` as a list of sink names: ``"none"``/``None``/``[]`` -> ``[]``; ``"all"`` -> ``["all"]`` (resolved to
    the installed sinks when the trainer starts); one name -> ``[name]``; a list keeps its names once each, in
    order (``"none"`` within a list is dropped, ``"all"`` within one stands for all). Anything else raises
    :class:`ConfigError` naming ``train.report_to`` and the valid values."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"experiment {experiment!r}: train.report_to = {value!r} {why}; valid values: a list of "
                           f"{list(SINKS)}, one of them, 'all' (every installed one) or 'none'", key="report_to")

    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise bad("must be a name or a list of names")
    names = [n.strip().lower() for n in names]
    unknown = [n for n in names if n not in (*SINKS, "all", "none")]
    if unknown:
        raise bad(f"names unknown sink(s) {unknown}")
    if "all" in names:
        return ["all"]
    return list(dict.fromkeys(n for n in names if n != "none"))


def _import(sink: str):
    """The module a sink writes through, or None when its package is not installed."""
    try:
        if sink == "tensorboard":
            return importlib.import_module("torch.utils.tensorboard")
        return importlib.import_module("wandb")
    except ImportError:
        return None


def resolve(report_to: list[str], experiment: str = "?") -> dict[str, Any]:
    """The sinks to open, each with its module. Called when the trainer starts (on every rank, so that all stop
    alike): a sink named explicitly whose package is missing raises :class:`ConfigError` naming the fix;
    ``"all"`` takes the installed ones and warns about the others."""
    modules = {}
    for sink in (SINKS if "all" in report_to else report_to):
        module = _import(sink)
        if module is not None:
            modules[sink] = module
        elif "all" in report_to:
            warnings.warn(f"experiment {experiment!r}: train.report_to = 'all': {sink} is not installed, so this "
                          f"run does not stream to it ({INSTALL[sink]})", SuiteWarning, stacklevel=2)
        else:
            raise ConfigError(f"experiment {experiment!r}: train.report_to asks for {sink!r}, but the {sink} package "
                              f"is not installed: {INSTALL[sink]}, or drop {sink!r} from train.report_to",
                              key="report_to")
    return modules


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a metrics row (not ``step``, which is the x axis) as ``train/<key>``."""
    return {f"train/{k}": float(v) for k, v in row.items() if k != "step" and isinstance(v, numbers.Real)}


class MetricSinks:
    """The open sinks of one trainer run (the main rank's alone); :meth:`log` each step's row, :meth:`close` at
    the end. With no sinks every call does nothing."""

    def __init__(self, modules: dict[str, Any], out_dir: str | Path, cfg, start_step: int = 0):
        self.writer = self.run = None
        out = Path(out_dir)
        try:
            if "tensorboard" in modules:
                # purge_step: TensorBoard hides what an earlier attempt logged at steps >= the first this one logs
                self.writer = modules["tensorboard"].SummaryWriter(log_dir=str(out / "tensorboard"),
                                                                   purge_step=start_step + 1)
            if "wandb" in modules:
                # dir=out: W&B writes into its own wandb/ folder there, <run>/wandb/offline-run-<time>-<id>
                self.run = modules["wandb"].init(mode="offline", dir=str(out), project="rlrepro",
                                                 name=cfg.experiment, config=dataclasses.asdict(cfg))
        except BaseException:
            self.close()
            raise

    def log(self, row: dict[str, Any]) -> None:
        step, values = int(row["step"]), scalars(row)
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, global_step=step)
            self.writer.flush()  # a researcher watching the run sees each step as it ends
        if self.run is not None:
            self.run.log(values, step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.run is not None:
            self.run.finish()
            self.run = None
