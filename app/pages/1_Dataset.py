"""HMSA Explorer, dataset page: every cascade and merge method over a data set.

Pick a data source (SynthScapes val N, a folder of images with masks, a Cityscapes layout) or
a sweep CSV from ``python -m analysis.sweep``, a model, cascades and methods; the sweep runs on
a background thread (one pass per scale per image, every image stored as it finishes) with
progress and a Stop button. Shows the dataset Pareto chart, per-class IoU across methods, the
per-class scale preference, the images ranked by HMSA's gain over the best single scale (in
mIoU or in small-object recall), and where each scale wins over the run (object size,
boundaries, calibration; see :mod:`app.explorer_parts.where_view`); a picked image opens on the
main page. The logic lives in :mod:`analysis.dataset_runs`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent.parent)
if _ROOT not in sys.path:  # `streamlit run app/explorer.py` puts only app/ on the path
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from analysis import dataset_jobs, dataset_runs  # noqa: E402
from analysis.cascades import format_cascade, parse_cascades  # noqa: E402
from analysis.dataset_sources import SYNTH_SIZES, DataSource  # noqa: E402
from analysis.sweep import SweepTable  # noqa: E402
from analysis.where_runs import RunWhere  # noqa: E402
from analysis.where_scales import ImageWhere  # noqa: E402
from app import common  # noqa: E402
from app.explorer_parts import sharing  # noqa: E402
from app.explorer_parts.page import page_header, pick_model  # noqa: E402
from hmsa_core.models import MultiScaleSegmenter  # noqa: E402

SOURCES = {
    "SynthScapes val": "synthscapes",
    "Folder of images with masks": "folder",
    "Cityscapes layout": "cityscapes",
    "Sweep CSV (command line)": "csv",
}
#: Set to ``0`` on a shared server: visitors then cannot read the server's folders.
FOLDERS_ENV = "HMSA_DATASET_FOLDERS"
DEFAULT_CASCADES = "0.5;1;2;0.5,1;0.5,1,2"
METHODS = ("hierarchical", "mean", "max", "explicit", "single")
#: Seconds between progress refreshes while a run is going.
POLL_SECONDS = 1.0


def _folders_allowed() -> bool:
    """Returns False when env ``HMSA_DATASET_FOLDERS`` is ``0`` (server folders not offered)."""
    return os.environ.get(FOLDERS_ENV, "1").strip() != "0"


def _data_source() -> DataSource | bytes | None:
    """Draws the data controls; returns the source, the uploaded CSV bytes, or None."""
    st.subheader("Data")
    offered = [k for k, v in SOURCES.items() if _folders_allowed() or v in ("synthscapes", "csv")]
    kind = SOURCES[st.radio("Source", offered, key="ds_source")]
    if kind == "csv":
        upload = st.file_uploader(
            "Sweep CSV (from python -m analysis.sweep --out ...)", type=["csv"], key="ds_csv"
        )
        return upload.getvalue() if upload is not None else None
    if kind == "synthscapes":
        count = st.number_input("Scenes", 1, 500, 8, key="ds_count")
        size = st.selectbox(
            "Scene size",
            SYNTH_SIZES,
            index=1,
            format_func=lambda s: f"{s[1]} x {s[0]}",
            key="ds_size",
        )
        return DataSource("synthscapes", count=int(count), size=size)
    location = st.text_input(
        "Folder" if kind == "folder" else "Cityscapes root",
        key="ds_location",
        placeholder="/data/street" if kind == "folder" else "/data/cityscapes",
        help="images with masks/<stem>.png or <stem>_mask.png"
        if kind == "folder"
        else "holds leftImg8bit/<split>/<city>/ and gtFine/",
    )
    split = st.text_input("Split", "val", key="ds_split") if kind == "cityscapes" else "val"
    count = st.number_input("First N images (0 = all)", 0, 100_000, 0, key="ds_first")
    max_side = st.number_input("Maximum side (px)", 64, 4096, 1024, 64, key="ds_max_side")
    return DataSource(kind, location, int(count), split=split, max_side=int(max_side))  # type: ignore[arg-type]


def _settings(source: DataSource) -> tuple[dataset_runs.RunSpec, MultiScaleSegmenter] | None:
    """Draws model, cascades and methods; returns ``(spec, model)`` or None (error shown)."""
    try:
        source.open()  # lists a folder or checks a layout; loads no image
    except ValueError as exc:
        st.error(f"Data: {exc}")
        return None
    st.subheader("Model and cascades")
    entry = pick_model("ds_model")
    if entry is None:
        return None
    st.caption(common.describe_model(entry))
    cascades_text = st.text_input(
        "Cascades", DEFAULT_CASCADES, key="ds_cascades", help="';' between cascades, ',' in one"
    )
    try:
        model = common.get_model(entry)
        cascades = parse_cascades(cascades_text)
    except ValueError as exc:
        st.error(str(exc))
        return None
    usable = [
        m
        for m in METHODS
        if (m != "hierarchical" or model.has_attention)
        and (m != "explicit" or common.default_method(model) == "explicit")
    ]
    methods = st.multiselect(
        "Methods", usable, default=[m for m in usable if m != "single"], key="ds_methods"
    )
    flip = st.checkbox(
        "Flip axis: also score every cascade with flip",
        value=False,
        key="ds_flip",
        help="each scale also runs on the mirrored image (twice the passes); the chart and the "
        "table then show every cascade and method with and without flip",
    )
    try:
        spec = dataset_runs.make_spec(
            entry.name, common.model_key(entry), source, cascades, methods, flip
        )
    except ValueError as exc:
        st.error(str(exc))
        return None
    return spec, model


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA after the first image"
    return f"ETA {seconds:.0f} s" if seconds < 120 else f"ETA {seconds / 60:.1f} min"


@st.fragment(run_every=POLL_SECONDS)
def _progress(spec: dataset_runs.RunSpec) -> None:
    """Shows the running job's progress and a Stop button; reruns the page when it ends."""
    job = dataset_jobs.job_for(spec)
    if job is None or not job.running:
        st.rerun(scope="app")
        return
    p = job.progress
    fraction = p.done / p.total if p.total else 0.0
    st.progress(fraction, text=f"{p.done} of {p.total} images done · {_eta(p.eta_seconds())}")
    if st.button("Stop", key="ds_stop", help="stops after the image being scored; keeps the rest"):
        job.stop()
        job.wait(timeout=60)
        st.rerun(scope="app")


def _run_controls(
    spec: dataset_runs.RunSpec,
    model: MultiScaleSegmenter,
    stored: dataset_runs.DatasetRun | None,
) -> bool:
    """Draws Run / Continue and the progress of a running job; returns True while it runs."""
    job = dataset_jobs.job_for(spec)
    if job is not None and job.running:
        _progress(spec)
        return True
    if job is not None and job.progress.error:
        st.error(job.progress.error)
    label = "Run"
    if stored is not None and not stored.complete:
        label = f"Continue ({stored.done} of {stored.total} stored)"
    elif stored is not None:
        return False
    if st.button(label, type="primary", key="ds_run"):
        dataset_jobs.start_job(spec, model)
        st.rerun()
    return False


def _pareto_and_iou(table: SweepTable, key: str) -> None:
    from analysis.figures import pareto_figure

    st.markdown("#### Accuracy against compute")
    axis = st.radio(
        "Compute axis",
        ["GFLOPs", "seconds"],
        horizontal=True,
        key=f"ds_pareto_axis_{key}",
        help="gated rows (sweep --gates ... --gate-by ...) are points of their own per criterion",
    )
    x = "gflops" if axis == "GFLOPs" else "seconds"
    st.plotly_chart(pareto_figure(table, x), width="stretch", key=f"ds_pareto_{key}_{x}")
    st.markdown("#### Per-class IoU (%) across methods")
    headers, rows = dataset_runs.per_class_iou_frame_rows(table)
    st.dataframe(pd.DataFrame(rows, columns=headers), hide_index=True, key=f"ds_iou_{key}")
    with st.expander("All rows"):
        st.markdown(table.to_markdown())


def _open_image(run: dataset_runs.DatasetRun, index: int) -> None:
    """Hands image ``index`` of the run to the main page and switches to it."""
    chosen = run.ranking_key()
    cascade = chosen[0] if chosen else max(run.spec.cascades, key=len)
    method = chosen[1] if chosen else run.spec.methods[0]
    st.session_state[sharing.OPEN_REQUEST] = sharing.OpenRequest(
        run.spec.data.to_dict(), index, run.spec.model_name, cascade, method
    )
    st.switch_page("explorer.py")


#: The orders the images list offers (the second needs the where-report stored with the run).
IMAGE_ORDERS = ("mIoU gain", "small-object recall gain")


def _small_gains(where: RunWhere | None) -> dict[int, ImageWhere]:
    """Returns image index -> its small-object summary stored with the run (empty without)."""
    return {} if where is None else dict(where.images)


def _points(value: float) -> float | None:
    return None if value != value else round(100.0 * value, 2)  # NaN -> None


def _images(run: dataset_runs.DatasetRun, where: RunWhere | None) -> None:
    chosen = run.ranking_key()
    ranking = run.ranking()
    if chosen is None or not ranking:
        st.info("No multi-scale merge with single scales to rank the images by.")
        return
    cascade, method = chosen
    small = _small_gains(where)
    order = IMAGE_ORDERS[0]
    if small:
        order = st.radio("Sort images by", IMAGE_ORDERS, horizontal=True, key="ds_image_order")
    if order == IMAGE_ORDERS[1]:
        ranked = [i for i, _ in where.ranking()] if where is not None else []
        position = {index: k for k, index in enumerate(ranked)}
        ranking = sorted(ranking, key=lambda g: (position.get(g.index, len(ranked)), g.index))
        st.markdown(
            "#### Images by small-object recall gain of HMSA over its best single scale "
            f"({format_cascade(run.scales, ', ')})"
        )
    else:
        st.markdown(
            f"#### Images by {method} ({format_cascade(cascade, ', ')})'s gain over its best "
            "single scale"
        )
    none = ImageWhere("", 0, {}, float("nan"), "")
    frame = pd.DataFrame(
        {
            "image": [dataset_runs.thumbnail_uri(g.thumbnail) for g in ranking],
            "name": [g.name for g in ranking],
            "gain (mIoU points)": [round(100 * g.gain, 2) for g in ranking],
            f"{method} mIoU (%)": [round(100 * g.merged_miou, 2) for g in ranking],
            "best single mIoU (%)": [round(100 * g.best_single_miou, 2) for g in ranking],
            "best single scale": [f"{g.best_single_scale:g}" for g in ranking],
            "small objects": [small.get(g.index, none).small_objects for g in ranking],
            "small-object recall gain (points)": [
                _points(small.get(g.index, none).gain) for g in ranking
            ],
        }
    )
    picked = st.dataframe(
        frame,
        hide_index=True,
        key="ds_images",
        on_select="rerun",
        selection_mode="single-row",
        row_height=64,
        column_config={
            "image": st.column_config.ImageColumn("image", width="small"),
            "small-object recall gain (points)": st.column_config.NumberColumn(
                help="object recall on the image's small objects: hierarchical over the run's "
                "scales minus its best single scale (empty: no small object)"
            ),
        },
    )
    rows = picked.selection.rows if picked is not None else []
    if rows:
        _open_image(run, ranking[rows[0]].index)
    st.caption("Select a row to open that image, with its mask, on the main page.")
    cols = st.columns([3, 1])
    by_index = {g.index: g for g in ranking}
    index = cols[0].selectbox(
        "Image", list(by_index), format_func=lambda i: by_index[i].name, key="ds_open_pick"
    )
    cols[1].write("")
    if cols[1].button("Open on the main page", key="ds_open"):
        _open_image(run, int(index))


def _show_run(run: dataset_runs.DatasetRun, running: bool) -> None:
    from analysis.scale_stats import scale_preference_figure

    if running:
        st.info(f"Running: {run.done} of {run.total} image(s) scored so far.")
    else:
        (st.success if run.complete else st.warning)(run.status())
    st.caption(f"{run.spec.describe()} · stored in {run.folder}")
    table = run.shown_table()
    _pareto_and_iou(table, "run")
    pref = run.preference()
    if pref is not None:
        st.markdown("#### Which scale decides each class")
        st.plotly_chart(scale_preference_figure(pref), width="stretch", key="ds_preference")
    where = run.where()
    _images(run, where)
    _where(where)


def _where(where: RunWhere | None) -> None:
    """The run's where-report: the explorer tab's size, boundary and calibration views over
    every scored image."""
    from app.explorer_parts.where_view import report_views

    st.markdown("### Where each scale wins, over the run")
    if where is None or where.report is None:
        st.info(
            "No where-report is stored with this run (made by runs on images with masks): "
            "run or continue it to score object sizes, boundaries and calibration."
        )
        return
    report_views(where.report, "ds_where")


def _show_csv(raw: bytes) -> None:
    try:
        table = dataset_runs.load_sweep_csv(raw)
    except ValueError as exc:
        st.error(f"Sweep CSV: {exc}")
        return
    st.info(
        f"A command-line sweep over {table.num_images} image(s). A CSV holds no per-image "
        "results: the scale preference and the image ranking need a run on this page."
    )
    _pareto_and_iou(table, "csv")


def main() -> None:
    """Draws the page."""
    page_header(
        "dataset",
        "Every cascade and merge method over a data set, from one forward pass per scale per "
        "image. Results are stored on disk (HMSA_RESULTS_DIR): the same settings reopen instantly.",
    )
    settings: tuple[dataset_runs.RunSpec, MultiScaleSegmenter] | None = None
    with st.sidebar:
        source = _data_source()
        if isinstance(source, DataSource):
            settings = _settings(source)
    if source is None:
        st.info("Upload a sweep CSV written by python -m analysis.sweep.")
        return
    if isinstance(source, bytes):
        _show_csv(source)
        return
    if settings is None:
        return
    spec, model = settings
    try:
        stored = dataset_runs.load_run(spec)
    except ValueError as exc:
        st.error(str(exc))
        return
    running = _run_controls(spec, model, stored)
    if stored is None or not stored.records:
        if not running:
            st.info(f"Nothing stored for these settings yet: {spec.describe()}.")
        return
    if running:
        st.caption("Results so far (they refresh when the run ends or stops):")
    _show_run(stored, running)


main()
