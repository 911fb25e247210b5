"""Memory plan: will each experiment of a profile fit its GPUs? (``python -m suite plan``)

Per experiment and per GPU, from the model's shape, the experiment's training keys and its GPU count
(``resources: {gpus: N}``), an estimate of what the trainer (suite/trainer.py, suite/distributed.py) holds:

- **parameters, gradients, optimizer**: fp32 master weights, fp32 gradients and AdamW's two fp32 moments, 4 + 4 + 8
  bytes per trained parameter, sharded over the N GPUs by FSDP2 (N = 1: not sharded); ``fsdp_cpu_offload`` moves
  them to the CPU;
- **gathered layers**: FSDP2 gathers one decoder layer at a time in bf16 (and prefetches the next): 2 layers x 2 bytes;
- **reference**: the frozen reference when ``kl_coef > 0``, fp32, sharded the same way;
- **reward model**: Cooper's reward model (trained: 16 bytes per parameter, static: 4) and its assistant (fp32), not
  sharded;
- **activations** of one micro-batch of ``micro_batch_size`` rows of ``max_prompt_tokens + max_new_tokens`` tokens,
  bf16: per token and layer (8 h + 2 kv + 4 i) x 2 bytes without gradient checkpointing (the tensors autograd keeps:
  norms, q/k/v, attention output, residuals, the MLP's gate/up/activation/product; SDPA keeps no T x T scores), h x 2
  bytes with it (each layer's input) plus one layer's full set while it is recomputed;
- **logits**: the micro-batch's completion logits in bf16 and their gradient (2 x rows x new tokens x vocabulary x 2
  bytes) plus the fp32 chunk of the log-softmax (suite/losses.py, LOGITS_CHUNK_ELEMENTS x 4 bytes x 3 temporaries);
- **vLLM**: ``vllm_gpu_memory_utilization`` of the card while it generates (engine: vllm); with sleep mode it frees
  that during the update, so the peak is the larger of (training state + vLLM) and (training state + update).

The numbers are estimates (no allocator fragmentation, CUDA context ~0.5 GiB counted in a 5 % headroom), meant to
say which experiments cannot fit and what to change, not to replace a measurement (scripts/gpu_check.sh compares
the estimate with a measured peak).
"""

from __future__ import annotations

from dataclasses import dataclass

from .losses import LOGITS_CHUNK_ELEMENTS

GIB = 2**30
HEADROOM = 0.95  # of the card's memory: CUDA context, allocator fragmentation


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    qkv_bias: bool = False

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def layer_params(self) -> int:
        h, kv = self.hidden, self.kv_dim
        attention = h * h * 2 + h * kv * 2 + ((h + 2 * kv) if self.qkv_bias else 0)
        return attention + 3 * h * self.intermediate + 2 * h

    def params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.layers * self.layer_params() + self.hidden


# Shapes of the models the profiles name (their config.json on the hub); a model not here is read from its local
# transformers config (a checkpoint directory or the HF cache), offline.
KNOWN: dict[str, Shape] = {
    "Qwen/Qwen2.5-Math-7B": Shape(28, 3584, 18944, 28, 4, 152064, tied=False, qkv_bias=True),
    "Qwen/Qwen2.5-7B-Instruct": Shape(28, 3584, 18944, 28, 4, 152064, tied=False, qkv_bias=True),
    "Qwen/Qwen2.5-3B-Instruct": Shape(36, 2048, 11008, 16, 2, 151936, tied=True, qkv_bias=True),
    "Qwen/Qwen2.5-1.5B-Instruct": Shape(28, 1536, 8960, 12, 2, 151936, tied=True, qkv_bias=True),
    "Qwen/Qwen2.5-Math-1.5B-Instruct": Shape(28, 1536, 8960, 12, 2, 151936, tied=True, qkv_bias=True),
    "meta-llama/Llama-3.2-1B-Instruct": Shape(16, 2048, 8192, 32, 8, 128256, tied=True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": Shape(30, 576, 1536, 9, 3, 49152, tied=True),
    "smollm2-135m-instruct": Shape(30, 576, 1536, 9, 3, 49152, tied=True),
    "tiny-llama": Shape(2, 64, 128, 4, 2, 422, tied=True),
}


def model_shape(name: str) -> Shape:
    if name in KNOWN:
        return KNOWN[name]
    try:
        from transformers import AutoConfig

        c = AutoConfig.from_pretrained(name, local_files_only=True)
    except Exception as err:  # noqa: BLE001 (no config offline: say which models are known)
        raise ValueError(f"model {name!r}: shape unknown offline ({type(err).__name__}); known: {sorted(KNOWN)} "
                         "(add it to suite/plan.py KNOWN)") from None
    return Shape(c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
                 getattr(c, "num_key_value_heads", None) or c.num_attention_heads, c.vocab_size,
                 tied=bool(getattr(c, "tie_word_embeddings", False)),
                 qkv_bias=bool(getattr(c, "attention_bias", False) or c.model_type.startswith("qwen2")))


@dataclass
class Estimate:
    experiment: str
    model: str
    gpus: int
    parts: dict[str, float]  # bytes per GPU
    peak: float
    gpu_memory: float  # GiB

    @property
    def fits(self) -> bool:
        return self.peak <= self.gpu_memory * GIB * HEADROOM


def estimate(train, gpus: int, gpu_memory: float, name: str = "") -> Estimate:
    """Bytes per GPU of one training run (``train``: a TrainConfig) on ``gpus`` GPUs of ``gpu_memory`` GiB."""
    shape = model_shape(train.model)
    n = max(gpus, 1)
    p = shape.params()
    on_gpu = 0.0 if train.fsdp_cpu_offload else 1.0
    parts = {"parameters": 4 * p / n * on_gpu, "gradients": 4 * p / n * on_gpu, "optimizer": 8 * p / n * on_gpu}
    parts["gathered layers"] = 2 * 2 * shape.layer_params() if n > 1 else 0.0
    parts["reference"] = 4 * p / n * on_gpu if train.kl_coef > 0 else 0.0
    rm = 0.0
    if train.method == "cooper":
        algo = train.algo or {}
        rm_shape = model_shape(algo.get("rm_init") or algo.get("rm_model") or train.model)
        rm = (16 if algo.get("update_rm", True) else 4) * rm_shape.params()
        assistant = algo.get("assistant", "base")
        if assistant not in ("rule",) and not (assistant == "base" and train.kl_coef > 0):
            rm += 4 * (p if assistant == "base" else model_shape(assistant).params())
    parts["reward model"] = rm
    rows, tokens = train.micro_batch_size, train.max_prompt_tokens + train.max_new_tokens
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    full_layer = (8 * h + 2 * kv + 4 * i) * 2  # bytes per token
    if train.gradient_checkpointing:
        activations = rows * tokens * (shape.layers * h * 2 + full_layer)
    else:
        activations = rows * tokens * shape.layers * full_layer
    parts["activations"] = activations
    chunk = min(LOGITS_CHUNK_ELEMENTS, rows * train.max_new_tokens * shape.vocab)
    parts["logits"] = 2 * rows * train.max_new_tokens * shape.vocab * 2 + 3 * 4 * chunk
    parts["vLLM"] = train.vllm_gpu_memory_utilization * gpu_memory * GIB if train.engine == "vllm" else 0.0
    static = sum(parts[k] for k in ("parameters", "gradients", "optimizer", "gathered layers", "reference",
                                    "reward model"))
    update = static + parts["activations"] + parts["logits"]
    if train.engine == "vllm":
        generation = static + parts["vLLM"]
        peak = max(generation, update) if train.vllm_enable_sleep_mode else update + parts["vLLM"]
    else:
        peak = update + 2 * p  # the HF engine's bf16 copy of the policy (its KV cache not counted)
        parts["HF engine copy"] = 2 * p
    return Estimate(name or train.experiment, train.model, n, parts, peak, gpu_memory)


def gpus_of(exp) -> int:
    return int((getattr(exp, "resources", None) or {}).get("gpus", 1) or 1)


def plan(profile, gpu_memory: float) -> list[Estimate]:
    return [estimate(exp.train, gpus_of(exp), gpu_memory, exp.name)
            for exp in profile.experiments.values() if exp.train is not None]


def advice(e: Estimate, train) -> str:
    """What would make ``e`` fit: more GPUs (the fewest that fit, up to 64), else offload / checkpointing / smaller
    micro-batches."""
    fixes = []
    for more in (2, 4, 8, 16, 32, 64):
        if more > e.gpus and estimate(train, more, e.gpu_memory).fits:
            fixes.append(f"resources: {{gpus: {more}}}")
            break
    for key, value in (("gradient_checkpointing", True), ("fsdp_cpu_offload", True)):
        if getattr(train, key) != value:
            import dataclasses

            if estimate(dataclasses.replace(train, **{key: value}), e.gpus, e.gpu_memory).fits:
                fixes.append(f"train.{key}: true")
    if train.micro_batch_size > 1:
        fixes.append(f"a smaller train.micro_batch_size (now {train.micro_batch_size})")
    return "; or ".join(fixes)


def table(estimates: list[Estimate]) -> str:
    """A Markdown table, GiB per GPU; experiments with the same numbers share a row."""
    cols = ["parameters", "gradients", "optimizer", "reference", "reward model", "activations", "logits", "vLLM"]
    head = ["experiments", "model", "GPUs", *cols, "peak / GPU", "fits"]
    rows: dict[tuple, list[str]] = {}
    for e in estimates:
        cells = (e.model.split("/")[-1], str(e.gpus), *(f"{e.parts.get(c, 0.0) / GIB:.1f}" for c in cols),
                 f"{e.peak / GIB:.1f}", "yes" if e.fits else "**no**")
        rows.setdefault(cells, []).append(e.experiment)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([", ".join(names), *cells]) + " |" for cells, names in rows.items()]
    return "\n".join(lines)


def check_profile(profile, gpu_memory: float) -> list[Estimate]:
    """Fail (ConfigError naming each experiment and its fix) when an experiment that asks for GPUs cannot fit them."""
    from .config import ConfigError

    from .algos import get_method

    bad = []
    for exp in profile.experiments.values():
        if exp.train is None or not (getattr(exp, "resources", None) or {}).get("gpus"):
            continue  # a CPU job: nothing to plan
        refusal = getattr(get_method(exp.train.method), "distributed_refusal", None)
        if refusal and gpus_of(exp) > 1:
            bad.append(f"experiments.{exp.name}: asks for {gpus_of(exp)} GPUs, but method {exp.train.method!r} "
                       f"trains on one process only ({refusal}); fix: resources: {{gpus: 1}}")
            continue
        e = estimate(exp.train, gpus_of(exp), gpu_memory, exp.name)
        if not e.fits:
            bad.append(f"experiments.{exp.name}: needs ~{e.peak / GIB:.0f} GiB per GPU on {e.gpus} GPU(s) of "
                       f"{gpu_memory:g} GiB; fix: {advice(e, exp.train)}")
    if bad:
        raise ConfigError(f"{profile.path}: memory plan (python -m suite plan --gpu-memory {gpu_memory:g}):\n  "
                          + "\n  ".join(bad))
    return plan(profile, gpu_memory)


def check_planned_profile(profile) -> list[Estimate] | None:
    """The profile's own memory check: with ``resources.gpu_memory`` set (GiB of one GPU), :func:`check_profile` at
    that size (the Snakefile and ``python -m suite validate`` call this before any job); None when it is unset."""
    gpu_memory = ((profile.raw.get("resources") or {}).get("gpu_memory"))
    return None if gpu_memory is None else check_profile(profile, float(gpu_memory))
