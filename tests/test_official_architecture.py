"""Our HRNet-OCR HMSA model has exactly the official model's state-dict layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hmsa_core.data.recipe_weights import read_manifest, recipe_state_dict, state_dict_sha256
from hmsa_core.labels import CITYSCAPES
from hmsa_core.models import available, build
from hmsa_core.models.mscale_ocr import ARCH, MscaleOCR

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = FIXTURES / "nvidia_mscale_ocr_hrnetv2_w48_cityscapes.json"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> MscaleOCR:
    built = build(ARCH, 19)
    assert isinstance(built, MscaleOCR)
    return built


def _param_groups(model: torch.nn.Module) -> dict[str, int]:
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        top = name.split(".", 1)[0]
        groups[top] = groups.get(top, 0) + p.numel()
    return groups


def test_registered_under_its_name() -> None:
    assert ARCH == "hrnet48_ocr_mscale"
    assert ARCH in available()


def test_state_dict_keys_and_shapes_equal_the_manifest_in_order(
    model: MscaleOCR, manifest: dict
) -> None:
    expected = [(k.removeprefix("module."), list(s)) for k, s in manifest["keys"]]
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert len(ours) == manifest["n_keys"] == 1903
    assert ours == expected


def test_parameter_counts_equal_the_manifest(model: MscaleOCR, manifest: dict) -> None:
    assert model.parameter_count() == manifest["total_params"] == 72_143_430
    assert _param_groups(model) == manifest["param_breakdown"]
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers == manifest["n_buffer_elements"]


def test_every_batchnorm_uses_eps_1e_5(model: MscaleOCR) -> None:
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 316
    assert {m.eps for m in norms} == {1e-5}


def test_65_class_variant_differs_only_in_the_two_classifiers(model: MscaleOCR) -> None:
    big = build(ARCH, 65)
    assert big.labels.name == "mapillary"
    ours, theirs = model.state_dict(), big.state_dict()
    assert list(ours) == list(theirs)
    changed = {k for k in ours if ours[k].shape != theirs[k].shape}
    assert changed == {
        "ocr.cls_head.weight",
        "ocr.cls_head.bias",
        "ocr.aux_head.2.weight",
        "ocr.aux_head.2.bias",
    }
    assert tuple(theirs["ocr.cls_head.weight"].shape) == (65, 512, 1, 1)
    assert tuple(theirs["ocr.aux_head.2.weight"].shape) == (65, 720, 1, 1)
    extra_classes = 65 - 19
    assert big.parameter_count() - model.parameter_count() == extra_classes * (512 + 1 + 720 + 1)


def test_hparams_rebuild_the_same_architecture(model: MscaleOCR) -> None:
    rebuilt = build(ARCH, labels=CITYSCAPES, **json.loads(json.dumps(model.hparams())))
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [
        (k, v.shape) for k, v in model.state_dict().items()
    ]
    with pytest.raises(ValueError, match="hyper-parameters"):
        build(ARCH, 19, no_such_field=3)


@pytest.mark.parametrize("size", [(16, 32), (50, 70), (64, 128)])
def test_forward_returns_maps_at_the_input_size(model: MscaleOCR, size: tuple[int, int]) -> None:
    assert model.has_aux and model.has_attention
    assert min(size) >= model.min_input_side
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.eval()(x)
    assert out.logits.shape == (1, 19, *size)
    assert out.aux_logits is not None and out.aux_logits.shape == (1, 19, *size)
    assert out.attention is not None and out.attention.shape == (1, 1, *size)
    assert bool(((out.attention > 0) & (out.attention < 1)).all())
    assert bool(torch.isfinite(out.logits).all())


def test_recipe_matches_the_fixture_fingerprints() -> None:
    """The README's fingerprints pin the recipe (and PyTorch's CPU generator) bit for bit."""
    state = recipe_state_dict(read_manifest(MANIFEST))
    assert (
        state_dict_sha256(state)
        == "0aeafac00b4b2227c453f844f7cd07378778222f7ddfb9cd49b18a0a6217d2e5"
    )
    total = sum(float(t.double().sum()) for t in state.values() if t.is_floating_point())
    assert total == pytest.approx(96170.25025649731, rel=1e-12)
    assert state["backbone.conv1.weight"].flatten()[:4].tolist() == pytest.approx(
        [0.10850066691637039, -0.25114744901657104, -0.0512680858373642, -0.2811067998409271], abs=0
    )
