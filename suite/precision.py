"""Which precision a run computes in: ``bf16: auto`` asks the hardware.

bf16 halves the bytes every matmul moves and, where the processor has bf16 instructions (x86's AVX-512 BF16
or AMX, a CUDA GPU of compute capability 8.0 or newer), runs about twice as fast as fp32. Where it has none
(an AVX2-only CPU), PyTorch emulates bf16 by converting to fp32 and back, and bf16 is several times *slower*
than fp32 (issue 22: a 512^3 matmul at 1.3 against 16 GFLOP/s). So ``auto`` picks bf16 only where it is native.

The answer comes from PyTorch's own CPU feature detection (``torch.cpu._is_avx512_bf16_supported``,
``_is_amx_tile_supported``; the same checks its oneDNN kernels use), read once per process, with the Linux
``/proc/cpuinfo`` flags as the fallback for a PyTorch that lacks them. ``describe_hardware`` names the CPU
(model and capability) for logs and benchmark records.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

AUTO = "auto"
# /proc/cpuinfo flags of native bf16 arithmetic on x86 (AVX-512 BF16 dot products, AMX tiles) and Arm (BF16)
_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def _torch_cpu_check(name: str) -> bool | None:
    check = getattr(torch.cpu, name, None)
    if check is None:
        return None
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 (a check that cannot run answers nothing)
        return None


def _cpuinfo_flags() -> set[str]:
    flags: set[str] = set()
    for line in _cpuinfo_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX on x86, BF16 on Arm)."""
    answers = [_torch_cpu_check("_is_avx512_bf16_supported"), _torch_cpu_check("_is_amx_tile_supported")]
    if any(answers):
        return True
    if all(a is not None for a in answers):
        return False
    return bool(_BF16_FLAGS & _cpuinfo_flags())


def native_bf16(device: torch.device | str) -> bool:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_bf16(setting: bool | str, device: torch.device | str) -> bool:
    """``True``/``False`` as given; ``"auto"``: bf16 where ``device`` computes it natively, else fp32."""
    if setting == AUTO:
        return native_bf16(device)
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"bf16 = {setting!r} must be true, false or {AUTO!r}")


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    for line in _cpuinfo_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine()


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def describe_hardware(device: torch.device | str = "cpu") -> dict[str, object]:
    """What a speed figure holds for: the CPU model, torch's CPU capability, native bf16, threads (and the GPU)."""
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16_cpu": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def precision_line(setting: bool | str, device: torch.device | str) -> str:
    """One log line: the precision chosen and why."""
    chosen = resolve_bf16(setting, device)
    name = "bf16" if chosen else "fp32"
    if setting != AUTO:
        return f"precision: {name} (bf16: {str(setting).lower()} in the config)"
    hw = describe_hardware(device)
    where = hw.get("gpu") or f"{hw['cpu']}, torch capability {hw['cpu_capability']}"
    native = "computes bf16 natively" if chosen else "has no native bf16 (it would be emulated, slower than fp32)"
    return f"precision: {name} (bf16: auto; {where} {native})"
