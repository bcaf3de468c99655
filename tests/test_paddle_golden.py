"""PaddleSeg's published weights run unchanged in our architecture (PaddleSeg golden fixtures).

Recipe weights are regenerated under PaddleSeg's key names, written as a genuine ``.pdparams``
pickle, loaded through ``hmsa_core.load_model`` (restricted unpickler + key conversion) and run
through ``hmsa_core.infer`` on the stored input; every array of ``paddleseg_mscale_golden.npz``
must match within ``1e-4 * max|golden|`` (fixtures README).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import hmsa_core
from hmsa_core.inference import InferenceResult
from hmsa_core.models.base import MultiScaleSegmenter
from tests.paddle_recipe import PADDLE_GOLDEN, paddle_manifest, recipe_pdparams

pytestmark = pytest.mark.slow

REL_TOL = 1e-4
ALL_SCALES = (0.25, 0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(PADDLE_GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> MultiScaleSegmenter:
    return hmsa_core.load_model(recipe_pdparams(tmp_path_factory), device="cpu")


@pytest.fixture(scope="module")
def full(model: MultiScaleSegmenter, golden: dict) -> InferenceResult:
    return hmsa_core.infer(
        torch.from_numpy(golden["input"]),
        ALL_SCALES,
        model=model,
        cache=None,
        precision="fp32",
        aux=True,
    )


def _rel_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    ours_np = ours.detach().cpu().numpy()
    assert ours_np.shape == reference.shape
    return float(np.abs(ours_np - reference).max() / np.abs(reference).max())


def test_recipe_weights_match_the_fixture_fingerprint() -> None:
    """The regenerated weights are the ones the golden arrays were made with."""
    from tests.paddle_recipe import paddle_recipe_tensor

    digest, total = hashlib.sha256(), 0.0
    for key, shape in paddle_manifest():
        array = paddle_recipe_tensor(key, shape).numpy()
        digest.update(array.tobytes())
        total += float(array.astype(np.float64).sum())
    assert digest.hexdigest() == "8a5e52218cef9063fd7a92199b5253fc0bfb298f373ec7107be86c9a64ffcb43"
    assert total == pytest.approx(96718.19138355953, rel=1e-12)


def test_every_per_scale_logit_attention_and_aux_map_matches(
    full: InferenceResult, golden: dict
) -> None:
    errors = {}
    for scale in ALL_SCALES:
        output = full.per_scale[scale].output
        for kind, ours in (
            ("pred", output.logits),
            ("attn", output.attention),
            ("aux", output.aux_logits),
        ):
            key = f"{kind}_scale_{scale}"
            if key in golden:
                assert ours is not None, key
                errors[key] = _rel_error(ours, golden[key])
    assert len(errors) >= 3 * len(ALL_SCALES) - 1
    assert max(errors.values()) <= REL_TOL, errors


@pytest.mark.parametrize("cascade", ["1.0", "0.5_1.0", "0.5_1.0_2.0", "0.25_0.5_1.0_2.0"])
def test_final_logits_of_every_cascade_match(
    full: InferenceResult, golden: dict, cascade: str
) -> None:
    scales = tuple(float(s) for s in cascade.split("_"))
    result = full.remerge("hierarchical", scales)
    error = _rel_error(result.logits.unsqueeze(0), golden[f"pred__{cascade}"])
    assert error <= REL_TOL, error


def test_converted_model_has_cityscapes_labels_and_the_official_parameter_count(
    model: MultiScaleSegmenter,
) -> None:
    assert model.labels.name == "cityscapes"
    assert model.checkpoint_info.extra["format"] == "paddleseg"
    assert model.parameter_count() == 72_143_430


def test_the_pdparams_file_is_listed_as_a_paddle_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from hmsa_core.discovery import discover_models

    path = recipe_pdparams(tmp_path_factory)
    entries = {e.name: e for e in discover_models(path.parent, include_pretrained=False)}
    entry = entries[path.name]
    assert (entry.kind, entry.num_classes, entry.label_set_name, entry.error) == (
        "paddle",
        19,
        "cityscapes",
        None,
    )
    assert entry.parameter_count == 72_143_430
