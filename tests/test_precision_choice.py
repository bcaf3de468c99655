"""Precision ``auto`` picks what the machine computes natively, falls back cleanly, and the
per-scale cache never serves a pass computed in another precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hmsa_core
from hmsa_core.cache import ByteLRUCache
from hmsa_core.folding import inference_copy
from hmsa_core.precision import (
    NATIVE_BF16_FLAGS,
    choose_precision,
    cpu_flags,
    cpu_has_native_bf16,
    resolve_precision,
)
from tests.tiny_models import noise_rgb

CPUINFO_WITH_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""
CPUINFO_WITHOUT = """processor\t: 0
flags\t\t: fpu vme sse sse2 avx2 avx512f
"""


@pytest.fixture(scope="module")
def model():
    """The bundled, trained ``hmsa-lite`` on the CPU (one copy per module)."""
    return hmsa_core.load_model("hmsa-lite", "cpu")


@pytest.fixture(scope="module")
def image():
    """A ``(64, 96, 3)`` uint8 noise image."""
    return noise_rgb((64, 96), seed=0)


def test_cpu_flags_are_read_from_cpuinfo_text():
    assert "avx512_bf16" in cpu_flags(CPUINFO_WITH_BF16)
    assert not cpu_flags(CPUINFO_WITHOUT) & NATIVE_BF16_FLAGS


def test_detection_on_this_machine_agrees_with_its_cpuinfo():
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    expected = bool(cpu_flags(info.read_text()) & NATIVE_BF16_FLAGS)
    assert cpu_has_native_bf16() is expected
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if expected else "fp32")


@pytest.mark.parametrize(
    ("requested", "device", "cpu_bf16", "cuda_bf16", "ran"),
    [
        ("auto", "cpu", True, True, "bf16"),
        ("auto", "cpu", False, True, "fp32"),
        ("auto", "cuda", False, True, "bf16"),
        ("auto", "cuda", False, False, "fp16"),
        ("auto", "mps", True, True, "fp32"),
        ("fp32", "cpu", True, True, "fp32"),
        ("bf16", "cpu", True, True, "bf16"),
        ("bf16", "cuda", False, True, "bf16"),
        ("fp16", "cuda", False, True, "fp16"),
    ],
)
def test_auto_picks_what_the_device_supports(requested, device, cpu_bf16, cuda_bf16, ran):
    assert choose_precision(requested, device, cpu_bf16=cpu_bf16, cuda_bf16=cuda_bf16) == ran


@pytest.mark.parametrize(
    ("requested", "device", "cpu_bf16", "message"),
    [
        ("bf16", "cpu", False, "native bfloat16"),
        ("fp16", "cpu", True, "only supported on CUDA"),
        ("int8", "cpu", True, "precision must be one of"),
        ("bf16", "mps", True, "not supported on mps"),
    ],
)
def test_unsupported_precisions_are_refused_with_the_fix(requested, device, cpu_bf16, message):
    with pytest.raises(ValueError, match=message):
        choose_precision(requested, device, cpu_bf16=cpu_bf16)


def test_fp32_is_exactly_the_model_run_directly(model, image):
    result = hmsa_core.infer(image, (1.0,), model=model, precision="fp32", cache=None)
    prepared = hmsa_core.prepare_input(image, model)
    with torch.no_grad():
        direct = model(prepared.tensor)
    assert torch.equal(result.per_scale[1.0].output.logits, direct.logits)
    assert result.cost.per_scale[0].precision == "fp32"


def test_auto_reports_what_ran_and_keeps_float32_outputs(model, image):
    result = hmsa_core.infer(image, (0.5, 1.0), model=model, cache=None)
    ran = resolve_precision("auto", torch.device("cpu"))
    assert {c.precision for c in result.cost.per_scale} == {ran}
    assert result.cost.precisions == (ran,)
    assert result.logits.dtype == torch.float32
    assert all(r.output.logits.dtype == torch.float32 for r in result.per_scale.values())
    assert all(w.dtype == torch.float32 for w in result.weights.values())


def test_the_cache_never_returns_a_pass_of_another_precision(model, image):
    cache: ByteLRUCache = ByteLRUCache(1 << 30)
    first = hmsa_core.infer(image, (1.0,), model=model, precision="fp32", cache=cache)
    auto = hmsa_core.infer(image, (1.0,), model=model, precision="auto", cache=cache)
    ran = resolve_precision("auto", torch.device("cpu"))
    assert auto.cost.per_scale[0].precision == ran
    assert auto.cost.per_scale[0].cached is (ran == "fp32")
    again = hmsa_core.infer(image, (1.0,), model=model, precision="fp32", cache=cache)
    assert again.cost.per_scale[0].cached and again.cost.per_scale[0].precision == "fp32"
    assert torch.equal(again.logits, first.logits)


def test_channels_last_reaches_the_first_convolution_in_reduced_precision(model, image):
    if resolve_precision("auto", torch.device("cpu")) == "fp32":
        pytest.skip("this CPU has no native bfloat16: auto runs float32, contiguous")
    folded = inference_copy(model, torch.bfloat16)  # reduced precision runs this copy
    assert folded is not None
    seen: list[tuple[bool, torch.dtype]] = []

    def record(_module, args):
        x = args[0]
        if x.is_meta:  # the FLOP count runs a meta replica (hooks included): not a pass
            return
        seen.append((x.is_contiguous(memory_format=torch.channels_last), x.dtype))

    def first_conv(net: torch.nn.Module) -> torch.nn.Module:
        return next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))

    handle = first_conv(folded.module).register_forward_pre_hook(record)
    try:
        hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, precision="bf16", cache=None)
    finally:
        handle.remove()
    handle = first_conv(model).register_forward_pre_hook(record)
    try:
        hmsa_core.infer(image, (1.0,), model=model, precision="fp32", cache=None)
    finally:
        handle.remove()
    assert [cl for cl, _ in seen] == [True, True, True, False]
