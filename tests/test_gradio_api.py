"""The Gradio app's ``/segment`` API, called over real HTTP with ``gradio_client``.

The app runs in-process on 127.0.0.1; requests use a bundled sample (or SynthScapes scenes
written for the test when the samples are not generated yet) and an uploaded PNG.
``/segment`` answers ``(mask PNG, data dict, per-scale maps .npz or None)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app import common  # noqa: E402
from app.gradio_app import build_app, concurrency_limit, launch  # noqa: E402
from app.gradio_parts.handlers import ANALYSIS_OUTPUTS  # noqa: E402
from hmsa_core.labels import CITYSCAPES  # noqa: E402
from hmsa_core.models.base import scaled_size  # noqa: E402
from tests.browser import free_port  # noqa: E402
from tests.gradio_calls import page_inputs  # noqa: E402
from tests.hostile_files import png_declaring  # noqa: E402

pytestmark = pytest.mark.slow

MAX_SIDE = 256


def samples_for_test(folder: Path) -> list[common.Sample]:
    """Returns the bundled samples, or two small SynthScapes scenes written to ``folder``."""
    samples = common.list_samples()
    if samples:
        return samples
    from hmsa_core.data.synthscapes import write_samples

    write_samples(folder, count=2, size=(128, 256))
    return common.list_samples(folder)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, list, Path]]:
    """Yields ``(client, samples, scratch folder)`` for an app served on 127.0.0.1."""
    scratch = tmp_path_factory.mktemp("gradio_api")
    samples = samples_for_test(scratch / "samples")
    demo = build_app(samples_dir=samples[0].image_path.parent)
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=str(scratch / "downloads"))
        yield client, samples, scratch
    finally:
        demo.close()


def read_png(path: str) -> tuple[np.ndarray, str]:
    """Returns ``(pixel values (H, W), PIL mode)`` of a PNG file."""
    with Image.open(path) as img:
        return np.asarray(img), img.mode


def expected_size(image_path: Path, max_side: int) -> tuple[int, int]:
    """Returns the ``(H, W)`` the app feeds the model for an image file."""
    with Image.open(image_path) as img:
        w, h = img.size
    return common.fitted_size((h, w), max_side)


def test_segment_returns_indexed_mask_and_per_scale_data_for_a_sample(served) -> None:
    client, samples, _ = served
    sample = samples[0]
    png, data, maps = client.predict(
        image=handle_file(str(sample.image_path)),
        scales=[0.5, 1.0, 2.0],
        method="hierarchical",
        max_side=MAX_SIDE,
        api_name="/segment",
    )
    size = expected_size(sample.image_path, MAX_SIDE)
    mask, mode = read_png(png)
    assert mode == "P"
    assert mask.shape == size
    ids = sorted(int(i) for i in np.unique(mask))
    assert ids == [c["id"] for c in data["classes_present"]]
    assert all(0 <= i < CITYSCAPES.num_classes for i in ids)
    assert [c["name"] for c in data["classes_present"]] == [CITYSCAPES.names[i] for i in ids]
    assert data["image_size"] == list(size)
    assert data["scales"] == [0.5, 1.0, 2.0]
    assert [p["scale"] for p in data["per_scale"]] == [0.5, 1.0, 2.0]
    for entry in data["per_scale"]:
        assert entry["input_size"] == list(scaled_size(size, entry["scale"]))
        assert entry["gflops"] > 0
        assert 0.0 < entry["mean_attention"] < 1.0
    flops = [p["gflops"] for p in data["per_scale"]]
    assert flops == sorted(flops)  # larger inputs cost more
    assert sum(p["mean_weight"] for p in data["per_scale"]) == pytest.approx(1.0, abs=1e-4)
    assert "miou" not in data
    check_scale_maps(maps, data, mask)


def check_scale_maps(path: str, data: dict, pred: np.ndarray) -> None:
    """Asserts the ``.npz`` of ``/segment`` holds every scale's attention at its input size and
    weight at the image size, weights summing to 1, and agrees with the mask and the data."""
    size = tuple(data["image_size"])
    with np.load(path) as arrays:
        assert arrays["scales"].tolist() == data["scales"]
        assert str(arrays["method"]) == data["method"]
        assert np.array_equal(arrays["pred"], pred)
        assert arrays["image"].shape == (*size, 3)
        assert "logits" not in arrays.files
        total = np.zeros(size, dtype=np.float64)
        for entry in data["per_scale"]:
            key = f"{entry['scale']:g}"
            attention = arrays[f"attention_{key}"]
            weight = arrays[f"weights_{key}"]
            assert attention.shape == tuple(entry["input_size"])
            assert weight.shape == size
            assert attention.min() >= 0.0 and attention.max() <= 1.0
            assert float(attention.astype(np.float64).mean()) == pytest.approx(
                entry["mean_attention"], abs=1e-3
            )
            assert float(weight.astype(np.float64).mean()) == pytest.approx(
                entry["mean_weight"], abs=1e-3
            )
            total += weight
            own = arrays[f"top_prob_{key}"]  # each scale's confidence at its own input size
            assert own.shape == tuple(entry["input_size"])
        confidence = {k: arrays[k].astype(np.float64) for k in ("top_prob", "margin", "entropy")}
    np.testing.assert_allclose(total, 1.0, atol=3e-3)  # float16 maps
    assert all(values.shape == size for values in confidence.values())
    assert 1.0 / 19 - 1e-3 <= confidence["top_prob"].min() <= confidence["top_prob"].max() <= 1.0
    assert (confidence["margin"] <= confidence["top_prob"] + 1e-3).all()
    for name, values in confidence.items():
        assert float(values.mean()) == pytest.approx(data["confidence"][f"mean_{name}"], abs=2e-3)


def test_segment_leaves_out_the_maps_when_asked(served) -> None:
    client, samples, _ = served
    png, data, maps = client.predict(
        image=handle_file(str(samples[0].image_path)),
        scales=[1.0],
        max_side=64,
        arrays=False,
        api_name="/segment",
    )
    assert maps is None
    assert read_png(png)[0].shape == tuple(data["image_size"])


def test_flip_runs_each_scale_mirrored_too_and_old_clients_get_no_flip(served) -> None:
    client, samples, _ = served
    image = handle_file(str(samples[0].image_path))
    kwargs = {"scales": [0.5, 1.0], "max_side": 128, "arrays": False, "api_name": "/segment"}
    _, plain, _ = client.predict(image=image, **kwargs)  # as a client from before the switch
    _, flipped, _ = client.predict(image=image, flip=True, **kwargs)
    assert plain["flip"] is False and [p["flipped"] for p in plain["per_scale"]] == [False] * 2
    assert flipped["flip"] is True
    assert [(p["scale"], p["flipped"]) for p in flipped["per_scale"]] == [
        (0.5, False), (0.5, True), (1.0, False), (1.0, True),
    ]  # fmt: skip
    assert flipped["total_gflops"] == pytest.approx(2 * plain["total_gflops"])
    inputs = page_inputs(
        image=image, scales=[0.5, 1.0], model_name="hmsa-lite", max_side=128, flip=True
    )
    outputs = client.predict(*inputs, api_name="/analyse")
    assert [row[0] for row in outputs[6]["data"]] == [0.5, 0.5, 1.0, 1.0, "total"]


def test_gate_by_reaches_the_run_and_the_data_reports_each_pass_skipped_share(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, samples, _ = served
    monkeypatch.setenv("HMSA_GATE_TILE", "32")  # read per request; the app runs in-process
    image = handle_file(str(samples[0].image_path))
    kwargs = {"scales": [0.5, 1.0], "max_side": 128, "arrays": False, "api_name": "/segment"}
    _, plain, _ = client.predict(image=image, **kwargs)  # as a client from before the gate
    assert (plain["gate"], plain["gate_by"], plain["gate_note"]) == (0.0, "bound", "")
    assert [p["skipped"] for p in plain["per_scale"]] == [0.0, 0.0]
    _, gated, _ = client.predict(image=image, gate=0.9, gate_by="attention", **kwargs)
    assert (gated["gate"], gated["gate_by"], gated["gate_approximate"]) == (0.9, "attention", True)
    assert "gated by attention (tau 0.9)" in gated["gate_note"]
    lowest, top = gated["per_scale"]
    assert lowest["skipped"] == 0.0 and 0.0 < top["skipped"] < 1.0  # the lowest scale runs whole
    assert gated["total_gflops"] < plain["total_gflops"]
    _, bound, _ = client.predict(image=image, gate=0.9, **kwargs)  # criterion left out: bound
    assert bound["gate_by"] == "bound" and not bound["gate_approximate"]
    with pytest.raises(AppError):
        client.predict(image=image, gate=0.9, gate_by="guess", **kwargs)
    with pytest.raises(AppError, match="gate must be in"):
        client.predict(image=image, gate=1.5, gate_by="attention", **kwargs)


def test_a_wrong_mask_is_refused_before_any_forward_pass(served, tmp_path: Path) -> None:
    client, _, _ = served
    path = tmp_path / "fresh.png"
    rng = np.random.default_rng(11)
    Image.fromarray((rng.random((36, 60, 3)) * 255).astype(np.uint8)).save(path)
    wrong = tmp_path / "wrong_mask.png"
    Image.fromarray(np.zeros((6, 6), dtype=np.uint8), mode="L").save(wrong)
    with pytest.raises(AppError, match="mask is 6 x 6"):
        client.predict(
            image=handle_file(str(path)),
            scales=[0.5, 1.0],
            mask=handle_file(str(wrong)),
            api_name="/segment",
        )
    _, data, _ = client.predict(
        image=handle_file(str(path)), scales=[0.5, 1.0], arrays=False, api_name="/segment"
    )
    assert [p["cached"] for p in data["per_scale"]] == [False, False]  # nothing ran before


def test_a_repeated_image_is_served_from_the_shared_scale_cache(served, tmp_path: Path) -> None:
    client, _, _ = served
    rng = np.random.default_rng(7)
    path = tmp_path / "cache_probe.png"
    Image.fromarray((rng.random((40, 72, 3)) * 255).astype(np.uint8)).save(path)
    _, first, _ = client.predict(image=handle_file(str(path)), scales="0.5, 1", api_name="/segment")
    _, second, _ = client.predict(image=handle_file(str(path)), scales="1, 2", api_name="/segment")
    assert [p["cached"] for p in first["per_scale"]] == [False, False]
    assert [p["cached"] for p in second["per_scale"]] == [True, False]


def test_segment_scores_an_uploaded_png_against_its_mask(served, tmp_path: Path) -> None:
    client, _, _ = served
    rng = np.random.default_rng(0)
    h, w = 70, 110  # odd size, below the default max side: kept as is
    image_path = tmp_path / "upload.png"
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(image_path)
    gt = np.full((h, w), 10, dtype=np.uint8)  # sky on top
    gt[h // 2 :] = 0  # road below
    gt[:3] = 255  # ignored rows
    mask_path = tmp_path / "upload_mask.png"
    Image.fromarray(gt, mode="L").save(mask_path)
    png, data, _ = client.predict(
        image=handle_file(str(image_path)),
        scales="0.5, 1.0",
        mask=handle_file(str(mask_path)),
        api_name="/segment",
    )
    mask, _ = read_png(png)
    assert mask.shape == (h, w)
    assert data["image_size"] == [h, w]
    assert data["method"] == "hierarchical"
    valid = gt != 255
    accuracy = float((mask[valid] == gt[valid]).mean())
    assert data["pixel_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert 0.0 <= data["miou"] <= 1.0
    assert set(data["per_class_iou"]) >= {"road", "sky"}


def test_bad_requests_fail_with_a_message_and_the_app_keeps_serving(served, tmp_path: Path) -> None:
    client, samples, _ = served
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    image = handle_file(str(samples[0].image_path))
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_declaring(9000, 9000))
    wrong_mask = tmp_path / "small_mask.png"
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8), mode="L").save(wrong_mask)
    cases = [
        ({"image": handle_file(str(text))}, "not a readable image"),
        ({"image": handle_file(str(huge))}, "too large"),
        ({"image": image, "scales": []}, "cascade is empty"),
        ({"image": image, "scales": [0.5, 99]}, "above the maximum"),
        ({"image": image, "scales": "0.5, big"}, "not a number"),
        ({"image": image, "method": "median"}, "unknown merge method"),
        ({"image": image, "mask": handle_file(str(wrong_mask))}, "mask is 5 x 5"),
        ({"image": image, "model": "no-such-model"}, "no model named"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(**kwargs, max_side=MAX_SIDE, api_name="/segment")
    png, data, _ = client.predict(image=image, scales=[1.0], max_side=MAX_SIDE, api_name="/segment")
    mask, _ = read_png(png)
    assert mask.shape == tuple(data["image_size"])


def test_page_handler_fills_every_output_for_a_sample_with_its_mask(served) -> None:
    client, samples, _ = served
    sample = next((s for s in samples if s.mask_path is not None), None)
    if sample is None:
        pytest.skip("no sample with a mask")
    model = common.list_models()[0].name
    inputs = page_inputs(
        image=handle_file(str(sample.image_path)),
        mask=handle_file(str(sample.mask_path)),
        scales=[0.5, 1.0],
        method="hierarchical",
        model_name=model,
        max_side=MAX_SIDE,
    )
    outputs = client.predict(*inputs, api_name="/analyse")
    overlay, gallery, summary, _, iou, _, cost, _, files = outputs[:9]
    annotated = overlay["value"]  # sent as a component update carrying the label set's colours
    labels = {a["label"] for a in annotated["annotations"]}
    assert labels and labels <= set(CITYSCAPES.names)
    assert set(overlay["color_map"]) == set(CITYSCAPES.names)
    assert len(gallery) == 2 * 3  # prediction, attention, weight per scale
    assert all(Path(item["image"]).is_file() for item in gallery)
    assert "mIoU" in summary
    assert iou["headers"][0] == "class"
    assert iou["data"][-1][0] == "mIoU"
    assert [row[0] for row in cost["data"]] == [0.5, 1.0, "total"]
    assert sorted(Path(f).suffix for f in files) == [".json", ".png"]
    shown = [name for name in ANALYSIS_OUTPUTS if name != "held"]  # a State is not sent
    with Image.open(outputs[shown.index("confidence")]) as confidence:
        assert confidence.mode == "RGB"
        height, width = expected_size(sample.image_path, MAX_SIDE)
        assert confidence.size == (width, height)
        assert len(np.unique(np.asarray(confidence).reshape(-1, 3), axis=0)) > 1


def test_concurrency_limit_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HMSA_GRADIO_CONCURRENCY", raising=False)
    assert concurrency_limit() == 2
    monkeypatch.setenv("HMSA_GRADIO_CONCURRENCY", "3")
    assert concurrency_limit() == 3
    monkeypatch.setenv("HMSA_GRADIO_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="positive integer"):
        concurrency_limit()
