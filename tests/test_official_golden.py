"""Our official-architecture model computes what NVIDIA's code computes (golden fixtures).

The recipe weights are regenerated from the key manifest, written in the official file layout,
loaded through ``hmsa_core.load_model`` and run through ``hmsa_core.infer`` on the stored
input; every golden array must match within ``1e-4 * max|golden|`` (fixtures README).

``HMSA_TEST_DEVICE=cuda`` runs the same checks on a GPU, in float32 with TF32 disabled (TF32's
reduced precision would exceed the tolerance; the fixtures README says so).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import hmsa_core
from hmsa_core.checkpoints.official import save_official
from hmsa_core.data.recipe_weights import read_manifest, recipe_state_dict
from hmsa_core.inference import InferenceResult
from hmsa_core.models.base import MultiScaleSegmenter

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = FIXTURES / "nvidia_mscale_ocr_hrnetv2_w48_cityscapes.json"
GOLDEN = FIXTURES / "nvidia_mscale_golden.npz"
REL_TOL = 1e-4
CASCADES = ("1.0", "0.5_1.0", "0.5_1.0_2.0", "0.25_0.5_1.0_2.0", "0.5_1.0_1.5_2.0")
ALL_SCALES = (0.25, 0.5, 1.0, 1.5, 2.0)
DEVICE = os.environ.get("HMSA_TEST_DEVICE", "cpu")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def full_precision() -> Iterator[None]:
    """Turns TF32 off for this module's GPU runs, restoring the previous settings after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def model(
    tmp_path_factory: pytest.TempPathFactory, golden: dict, full_precision: None
) -> MultiScaleSegmenter:
    gain = float(golden["recipe_gain"])
    state = recipe_state_dict(read_manifest(MANIFEST), gain=gain)
    path = tmp_path_factory.mktemp("golden") / "cityscapes_recipe.pth"
    save_official(state, path, 19, mean_iu=np.float64(0.0))
    return hmsa_core.load_model(path, device=DEVICE)


@pytest.fixture(scope="module")
def full(model: MultiScaleSegmenter, golden: dict) -> InferenceResult:
    """Every distinct scale run once; each cascade is then a re-merge without forward passes."""
    image = torch.from_numpy(golden["input"])
    return hmsa_core.infer(image, ALL_SCALES, model=model, cache=None, precision="fp32")


def _cascade(name: str) -> tuple[float, ...]:
    return tuple(float(s) for s in name.split("_"))


def _rel_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    ours_np = ours.detach().cpu().numpy()
    assert ours_np.shape == reference.shape
    return float(np.abs(ours_np - reference).max() / np.abs(reference).max())


def _per_scale_arrays(golden: dict) -> list[tuple[str, float, str]]:
    """Returns ``(array name, scale, 'pred'|'attn')`` for every stored per-scale array."""
    found = []
    for key in golden:
        for kind in ("pred", "attn"):
            prefix = f"{kind}_scale_"
            if key.startswith(prefix):
                found.append((key, float(key[len(prefix) :].split("__")[0]), kind))
    return found


def test_fixture_holds_what_this_test_compares(golden: dict) -> None:
    assert {f"pred__{c}" for c in CASCADES} <= set(golden)
    assert {s for _, s, _ in _per_scale_arrays(golden)} == set(ALL_SCALES)
    assert golden["input"].shape == (1, 3, 64, 128)


def test_every_per_scale_logit_and_attention_map_matches(
    full: InferenceResult, golden: dict
) -> None:
    errors = {}
    for key, scale, kind in _per_scale_arrays(golden):
        output = full.per_scale[scale].output
        ours = output.logits if kind == "pred" else output.attention
        assert ours is not None
        errors[key] = _rel_error(ours, golden[key])
    assert errors and max(errors.values()) <= REL_TOL, errors


@pytest.mark.parametrize("cascade", CASCADES)
def test_final_logits_of_every_cascade_match(
    full: InferenceResult, golden: dict, cascade: str
) -> None:
    result = full.remerge("hierarchical", _cascade(cascade))
    reference = golden[f"pred__{cascade}"]
    assert _rel_error(result.logits.unsqueeze(0), reference) <= REL_TOL
    # Arg-max agrees wherever the golden top-2 margin is clearly above the tolerance.
    top2 = np.sort(reference[0], axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 2 * REL_TOL * np.abs(reference).max()
    assert clear.mean() > 0.99
    assert np.array_equal(result.pred.cpu().numpy()[clear], reference[0].argmax(0)[clear])


def test_infer_on_the_cityscapes_cascade_matches_directly(
    model: MultiScaleSegmenter, golden: dict
) -> None:
    """The public ``infer`` call itself (no re-merge) on the Cityscapes eval cascade."""
    result = hmsa_core.infer(
        torch.from_numpy(golden["input"]),
        (0.5, 1.0, 2.0),
        model=model,
        cache=None,
        precision="fp32",
    )
    assert _rel_error(result.logits.unsqueeze(0), golden["pred__0.5_1.0_2.0"]) <= REL_TOL
    assert result.per_scale[2.0].attention is not None  # computed, though never used in the mix


def test_two_scale_forward_outputs_match(full: InferenceResult, golden: dict) -> None:
    two = full.remerge("hierarchical", (0.5, 1.0))
    pairs = {
        "two_scale__pred": two.logits.unsqueeze(0),
        "two_scale__pred_05x": two.per_scale[0.5].output.logits,
        "two_scale__pred_10x": two.per_scale[1.0].output.logits,
        "two_scale__attn_05x": two.per_scale[0.5].output.attention,
    }
    errors = {k: _rel_error(v, golden[k]) for k, v in pairs.items()}
    assert max(errors.values()) <= REL_TOL, errors
