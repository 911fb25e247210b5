"""`bf16: auto` follows the hardware: bf16 where the CPU computes it natively, fp32 where it is emulated."""

import pytest
import torch

from suite import precision


@pytest.fixture
def cpu(monkeypatch):
    """Pretend to be a CPU with (or without) native bf16, whatever this machine is."""
    def set_cpu(avx512_bf16: bool, amx: bool, flags: str = ""):
        precision.cpu_has_native_bf16.cache_clear()
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        monkeypatch.setattr(precision, "_cpuinfo_text", lambda: f"model name\t: Test CPU\nflags\t\t: {flags}\n")
    yield set_cpu
    precision.cpu_has_native_bf16.cache_clear()


def test_auto_is_fp32_on_an_avx2_only_cpu(cpu):
    cpu(avx512_bf16=False, amx=False, flags="fpu sse avx avx2 fma")
    assert precision.resolve_bf16("auto", "cpu") is False
    assert "fp32" in precision.precision_line("auto", "cpu") and "no native bf16" in precision.precision_line("auto", "cpu")


@pytest.mark.parametrize("avx512_bf16, amx", [(True, False), (False, True)])
def test_auto_is_bf16_where_the_cpu_has_bf16_instructions(cpu, avx512_bf16, amx):
    cpu(avx512_bf16=avx512_bf16, amx=amx)
    assert precision.resolve_bf16("auto", "cpu") is True


def test_cpuinfo_flags_decide_when_torch_has_no_check(cpu, monkeypatch):
    cpu(avx512_bf16=False, amx=False, flags="avx2 avx512f avx512_bf16")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert precision.resolve_bf16("auto", "cpu") is True


def test_an_explicit_setting_is_kept_whatever_the_cpu(cpu):
    cpu(avx512_bf16=False, amx=False)
    assert precision.resolve_bf16(True, "cpu") is True
    cpu(avx512_bf16=True, amx=True)
    assert precision.resolve_bf16(False, "cpu") is False
    with pytest.raises(ValueError, match="true, false or 'auto'"):
        precision.resolve_bf16("fast", "cpu")


def test_the_hardware_record_names_the_cpu(cpu):
    cpu(avx512_bf16=False, amx=False)
    precision.cpu_model.cache_clear()
    info = precision.describe_hardware()
    precision.cpu_model.cache_clear()
    assert info["cpu"] == "Test CPU" and info["native_bf16_cpu"] is False
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_the_trainer_computes_in_the_precision_auto_picks(cpu, tmp_path):
    from suite.config import TrainConfig
    from suite.data import prepare
    from suite.trainer import Trainer

    prepare("arithmetic_smoke", "train", str(tmp_path / "data"))
    cfg = TrainConfig(experiment="p", model="tiny-llama", train_dataset="arithmetic_smoke",
                      data_dir=str(tmp_path / "data"), steps=1, max_new_tokens=4)
    assert cfg.bf16 == "auto"
    cpu(avx512_bf16=False, amx=False)
    trainer = Trainer(cfg, tmp_path / "fp32")
    assert trainer.bf16 is False and trainer.engine.model is trainer.policy  # no bf16 sampling copy
    cpu(avx512_bf16=True, amx=False)
    trainer = Trainer(cfg, tmp_path / "bf16")
    assert trainer.bf16 is True and next(trainer.engine.model.parameters()).dtype == torch.bfloat16
