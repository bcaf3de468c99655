"""``examples/quickstart.ipynb`` is committed without outputs and runs top to bottom offline
(executed by nbclient, the Jupyter project's notebook runner)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has code cells"
    assert [c.outputs for c in code] == [[] for _ in code]
    assert [c.execution_count for c in code] == [None for _ in code]


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom_offline(tmp_path: Path, monkeypatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("HMSA_OFFLINE", "1")
    monkeypatch.setenv("HMSA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "models"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert any("prediction over the input" in o["data"]["text/html"] for o in html)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "weights sum to 1: True" in text
    assert "skipped: the pretrained model is not available here" in text
    assert "HMSA_OFFLINE" in text  # the reason, with what to do
    assert "small-object recall" in text and "ECE" in text  # where each scale wins
    assert "GFLOPs with flip" in text  # flip as a pass
    assert "gated by attention (tau 0.7): approximate" in text  # gate criteria
