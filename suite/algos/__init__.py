"""Per-method pieces: each file holds only what makes that method different.

A method is a subclass of :class:`suite.trainer.Method`; the trainer's shared
loop calls its ``collect`` (rollouts with advantages) and ``loss`` hooks.
"""

from __future__ import annotations

from .. import import_object

METHODS = {
    "grpo": "suite.algos.grpo:GRPO",
    "igpo": "suite.algos.igpo:IGPO",  # IGPO (issue 3): info-gain turn rewards; GRPO-F1 and ablations as options
    "cooper": "suite.algos.cooper:Cooper",  # Cooper (issue 6): GRPO on a co-trained reference-based RM
    "sft": "suite.algos.sft:SFT",  # Retaining by Doing (issue 7): expert / self / iterative / rl_traces
    "rbd_grpo": "suite.algos.rbd_grpo:RBDGRPO",  # Retaining by Doing (issue 7): GRPO of the reference code
    "msgrpo": "suite.algos.msgrpo:MSGRPO",  # MS-GRPO + AAW (issue 4)
    "exgrpo": "suite.algos.exgrpo:ExGRPO",  # ExGRPO (issue 5): replay buffer of successes, mixed-policy loss
}


def get_method(name: str):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return import_object(METHODS[name], f"method {name!r}")
