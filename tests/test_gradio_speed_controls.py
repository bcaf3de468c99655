"""The Gradio app's precision choice, attention-gate slider and memory estimate, called over
real HTTP with ``gradio_client`` against an app served on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402

from app import common  # noqa: E402
from app.gradio_app import build_app, launch  # noqa: E402
from hmsa_core.data.synthscapes import write_samples  # noqa: E402
from hmsa_core.precision import resolve_precision  # noqa: E402
from tests.browser import free_port  # noqa: E402
from tests.gradio_calls import estimate_inputs, page_inputs  # noqa: E402

pytestmark = pytest.mark.slow

GATE_ENV = {"HMSA_GATE_TILE": "64", "HMSA_TILE_OVERLAP": "32"}
ESTIMATE = "/memory_estimate"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, list]]:
    folder = tmp_path_factory.mktemp("speed_gradio")
    write_samples(folder / "samples", count=2, size=(256, 512), seed=3)
    samples = common.list_samples(folder / "samples")
    saved = {k: os.environ.get(k) for k in GATE_ENV}
    os.environ.update(GATE_ENV)
    demo = build_app(samples_dir=folder / "samples")
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(url, verbose=False, download_files=str(folder / "downloads")), samples
    finally:
        demo.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def analyse(
    client: Client, image: Path, precision: str, gate: float, gate_by: str = "bound"
) -> tuple:
    return client.predict(
        *page_inputs(
            image=handle_file(str(image)), method="hierarchical", model_name="hmsa-lite",
            max_side=512, precision=precision, gate=gate, gate_by=gate_by,
        ),
        api_name="/analyse",
    )  # fmt: skip


def cost_table(outputs: tuple) -> dict[str, list]:
    table = next(o for o in outputs if isinstance(o, dict) and "precision" in o.get("headers", []))
    headers = table["headers"]
    return {h: [row[i] for row in table["data"]] for i, h in enumerate(headers)}


def test_precision_and_gate_reach_the_run_and_the_cost_table(served):
    client, samples = served
    image = next(s.image_path for s in samples if s.name == "synthscapes_val_001")
    outputs = analyse(client, image, "fp32", 0.0)
    table = cost_table(outputs)
    assert set(table["precision"]) == {"fp32"}
    assert table["computed %"][:3] == [100.0, 100.0, 100.0]
    summary = next(o for o in outputs if isinstance(o, str) and "GFLOPs" in o)
    assert "ran in fp32" in summary
    # the exact bound keeps every tile of this sample once the lite model's 48-px context
    # margin widens the windows; the confidence criterion at 0.5 skips some
    gated = analyse(client, image, "fp32", 0.5, "confidence")
    table = cost_table(gated)
    assert min(table["computed %"][:3]) < 100
    assert table["GFLOPs saved"][-1] > 0
    gallery = next(o for o in gated if isinstance(o, list) and o and isinstance(o[0], dict))
    captions = [item.get("caption") or "" for item in gallery]
    assert any("skipped" in c for c in captions), captions
    auto = cost_table(analyse(client, image, "auto", 0.0))
    assert set(auto["precision"]) == {resolve_precision("auto", torch.device("cpu"))}


def test_the_memory_estimate_is_shown_before_a_run(served):
    client, samples = served
    image = handle_file(str(samples[0].image_path))
    settings = {"image": image, "model_name": "hmsa-lite", "max_side": 512}
    fp32 = client.predict(*estimate_inputs(**settings, precision="fp32"), api_name=ESTIMATE)
    auto = client.predict(*estimate_inputs(**settings, precision="auto"), api_name=ESTIMATE)
    assert "GFLOPs" in fp32 and "MB in fp32" in fp32
    ran = resolve_precision("auto", torch.device("cpu"))
    assert f"MB in {ran}" in auto
    none = client.predict(
        *estimate_inputs(scales=[0.5, 1.0], model_name="hmsa-lite", max_side=512),
        api_name=ESTIMATE,
    )
    assert "pick an image" in none
