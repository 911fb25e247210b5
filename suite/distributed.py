"""Many processes, one trainer: the world, reductions, FSDP2 wrapping and full state dicts.

``python -m suite train`` runs as one process; under ``torchrun --nproc_per_node N`` (or ``accelerate launch``)
:func:`setup` reads the world from the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) and joins the
process group: NCCL on CUDA, gloo on the CPU. Everything here is a no-op with one process, so the
single-process trainer runs exactly as before.

How the trainer uses it (suite/trainer.py):

- generation is split by whole prompt groups (a group's samples never span ranks): each rank generates a
  contiguous share of the step's prompts and the completions are gathered, so every rank holds the step's
  full rollouts (rewards, advantages and method state are computed on all ranks alike: replicated);
- the update is split by groups too: each rank trains on its groups' rows, the loss normalised by the whole
  batch's token / sequence counts, and FSDP2 sums the gradients (divide factor 1), so N ranks take the update
  one process takes over the same batch;
- checkpoints hold full (unsharded) weights and a full optimizer state keyed by parameter names, so a run
  resumes on any number of ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    # -- collectives (each is the identity with one process) -----------------
    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=src)
        return box[0]

    def sum_dict(self, values: dict[str, float]) -> dict[str, float]:
        """Key-wise sum over ranks (a key missing on a rank counts 0)."""
        if not self.distributed:
            return dict(values)
        out: dict[str, float] = {}
        for part in self.all_gather_object(values):
            for key, value in part.items():
                out[key] = out.get(key, 0.0) + value
        return out

    def max_int(self, value: int) -> int:
        if not self.distributed:
            return value
        return max(self.all_gather_object(int(value)))

    def share(self, n: int) -> range:
        """This rank's contiguous share of ``n`` items (the first ``n % size`` ranks take one more)."""
        return share_of(n, self.rank, self.size)


def share_of(n: int, index: int, count: int) -> range:
    """Part ``index`` of ``count`` contiguous parts of ``n`` items (the first ``n % count`` parts take one more)."""
    base, extra = divmod(n, count)
    start = index * base + min(index, extra)
    return range(start, start + base + (index < extra))


def generation_share(n: int, w: World, tensor_parallel: int = 1) -> range:
    """The prompt groups this rank generates: its share of ``n``, where the ranks of one tensor-parallel vLLM engine
    (``tensor_parallel`` consecutive ranks) share one part, since they must all make the same calls."""
    return share_of(n, w.rank // tensor_parallel, w.size // tensor_parallel)


_WORLD: World | None = None


def setup() -> World:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); one process otherwise."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        _WORLD = World()
        return _WORLD
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            dist.init_process_group("nccl", device_id=torch.device("cuda", local))
        else:
            dist.init_process_group("gloo")
    _WORLD = World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local)
    return _WORLD


def world() -> World:
    return _WORLD if _WORLD is not None else setup()


def teardown() -> None:
    global _WORLD
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _WORLD = None


def device_for(w: World) -> torch.device:
    return torch.device("cuda", w.local_rank) if torch.cuda.is_available() else torch.device("cpu")


# -- FSDP2 -------------------------------------------------------------------
def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's repeated blocks (``model.model.layers`` for Llama / Qwen2 / SmolLM2 and most HF decoders)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return list(obj)
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__} to shard them")


def shard(model: torch.nn.Module, *, bf16: bool, offload: bool = False) -> torch.nn.Module:
    """FSDP2: ``fully_shard`` each decoder layer, then the root (embeddings, norm, head).

    ``bf16``: bf16 parameters and compute, fp32 gradient reduction (MixedPrecisionPolicy); ``offload``: the
    sharded parameters (and so the optimizer state built over them) live on the CPU. FSDP averages gradients
    over ranks; the trainer's loss is normalised by the whole batch, so it multiplies each rank's loss by the
    world size before the backward pass (a divide factor of 1 would need PREMUL_SUM, which gloo lacks).
    """
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    if not torch.distributed.is_initialized():  # fsdp: true in one process (no torchrun): a group of one
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend, store=torch.distributed.HashStore(), rank=0, world_size=1)
    kwargs: dict[str, Any] = {}
    if bf16:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if offload:
        kwargs["offload_policy"] = CPUOffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_state_dict(model: torch.nn.Module, *, everywhere: bool = False) -> dict[str, torch.Tensor]:
    """The unsharded weights on the CPU: on rank 0 only (``everywhere``: on every rank). A collective when
    ``model`` is sharded (every rank must call it); the plain ``state_dict`` otherwise."""
    if not is_sharded(model):
        return {k: v.detach() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if everywhere:
        sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=False))
        return {k: v.detach().cpu() for k, v in sd.items()}
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def iter_full_tensors(model: torch.nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """(name, full tensor) one parameter or buffer at a time, each gathered from its shards when sharded: what a
    weight push needs without holding a second full copy. A collective under FSDP (all ranks, same order)."""
    from torch.distributed.tensor import DTensor

    for name, value in model.state_dict().items():
        yield name, value.full_tensor() if isinstance(value, DTensor) else value.detach()


# -- optimizer state ---------------------------------------------------------
def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state to checkpoint: the plain ``state_dict`` for an unsharded model (what single-process
    checkpoints always held, keyed by parameter index); under FSDP the full, unsharded state keyed by
    parameter name (a collective; complete on rank 0). :func:`load_optimizer_state` reads both."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _param_names(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def _by_name(state: dict, names: list[str]) -> dict:
    """Index-keyed optimizer state -> name-keyed (the full-state-dict layout of torch.distributed.checkpoint)."""
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {names[i]: v for i, v in state["state"].items()}, "param_groups": groups}


def _by_index(state: dict, names: list[str]) -> dict:
    index = {name: i for i, name in enumerate(names)}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]
    return {"state": {index[n]: v for n, v in state["state"].items()}, "param_groups": groups}


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a checkpoint's optimizer state written by any number of ranks into this run's optimizer."""
    keyed_by_name = any(isinstance(k, str) for k in state["state"]) or any(
        isinstance(p, str) for g in state["param_groups"] for p in g["params"])
    names = _param_names(model)
    if not is_sharded(model):
        optimizer.load_state_dict(_by_index(state, names) if keyed_by_name else state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    full = state if keyed_by_name else _by_name(state, names)
    set_optimizer_state_dict(model, optimizer, full, options=StateDictOptions(full_state_dict=True))


def clip_grad_norm(model: torch.nn.Module, max_norm: float) -> float:
    """Clip the gradients' global norm (over every rank's shards under FSDP) and return it."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)
