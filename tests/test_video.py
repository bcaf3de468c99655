"""Video: decoding/encoding round trips, flicker, motion compensation, outputs, bad input.

Clips are tiny MP4s written by the tests with PyAV; :class:`tests.video_clips.ColourModel`
labels each pixel by its dominant colour channel, so every expected label is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hmsa_core
from analysis.temporal import (
    TemporalSettings,
    TemporalTracker,
    flicker_table,
    label_flicker,
    warp_labels,
)
from analysis.video_run import VideoRun, VideoRunSettings, run_video
from hmsa_core.video_io import VideoReader, probe_video
from tests.video_clips import (
    BLUE,
    GREEN,
    RED,
    ColourModel,
    labels_image,
    rotate_tkhd,
    smooth_texture,
    write_audio_only,
    write_clip,
)

H, W = 64, 128
SCALES = (0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def model() -> ColourModel:
    return ColourModel().eval()


def square_labels(top: int, left: int, side: int = 32) -> np.ndarray:
    labels = np.full((H, W), BLUE)
    labels[top : top + side, left : left + side] = RED
    return labels


def track(model: ColourModel, source: object, settings: TemporalSettings | None = None):
    tracker = TemporalTracker(SCALES, model.labels, settings or TemporalSettings(flow="none"))
    for result in hmsa_core.infer_video(source, SCALES, model=model, precision="fp32"):
        tracker.update(result)
    return tracker


def test_frame_count_timestamps_and_labels_round_trip(tmp_path: Path, model: ColourModel) -> None:
    times = [0.0, 0.1, 0.25, 0.3, 0.7]  # variable frame rate
    labels = [square_labels(16, 8 + 16 * i) for i in range(len(times))]
    clip = write_clip(tmp_path / "vfr.mp4", [labels_image(x) for x in labels], times)
    with VideoReader(clip) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(5))
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)
    results = list(hmsa_core.infer_video(clip, SCALES, model=model, precision="fp32"))
    assert [r.time for r in results] == pytest.approx(times, abs=1e-3)
    for result, expected in zip(results, labels):
        pred = result.remerge("single:1").pred.numpy()
        assert (pred == expected).mean() > 0.995  # only codec noise at the square's edge


def test_every_and_frame_cap(tmp_path: Path, model: ColourModel, monkeypatch) -> None:
    clip = write_clip(
        tmp_path / "c.mp4", [labels_image(square_labels(16, 4 * i)) for i in range(8)]
    )
    assert [r.frame_index for r in hmsa_core.infer_video(clip, (1.0,), model=model, every=3)] == [
        0,
        3,
        6,
    ]
    monkeypatch.setenv("HMSA_MAX_VIDEO_FRAMES", "3")
    video = hmsa_core.infer_video(clip, (1.0,), model=model, max_frames=50)
    assert len(list(video)) == 3
    assert any("HMSA_MAX_VIDEO_FRAMES=3" in n for n in video.notices)


def test_static_clip_has_zero_flicker(tmp_path: Path, model: ColourModel) -> None:
    clip = write_clip(tmp_path / "static.mp4", [labels_image(square_labels(16, 40))] * 5)
    tracker = track(model, clip, TemporalSettings(flow="tvl1"))
    for row in flicker_table(tracker.stats, tracker.methods):
        assert row.flicker == 0.0 and row.flicker_mc == 0.0, row


def test_one_known_change_flickers_by_its_area(tmp_path: Path, model: ColourModel) -> None:
    base = np.full((H, W), BLUE)
    changed = base.copy()
    changed[16:48, 64:96] = GREEN  # 32 x 32 pixels appear in frame 2 and stay
    frames = [labels_image(base)] * 2 + [labels_image(changed)] * 2
    tracker = track(model, write_clip(tmp_path / "change.mp4", frames))
    area = 32 * 32 / (H * W)
    for method in tracker.methods:
        per_frame = [s.flicker[method] for s in tracker.stats]
        assert per_frame[0] is None
        assert per_frame[1] == 0.0 and per_frame[3] == 0.0
        assert per_frame[2] == pytest.approx(area, abs=40 / (H * W)), method  # edge pixels


def test_motion_compensated_flicker_of_a_translation_is_near_zero(
    tmp_path: Path, model: ColourModel
) -> None:
    big = np.full((H, W + 64), BLUE)
    big[8:56, 40:100] = RED
    big[20:44, 120:150] = GREEN
    texture = smooth_texture(big.shape)
    frames = [labels_image(big, texture)[:, 4 * i : 4 * i + W] for i in range(6)]
    clip = write_clip(tmp_path / "pan.mp4", frames)
    tracker = track(model, clip, TemporalSettings(flow="ilk"))
    (row,) = flicker_table(tracker.stats, ("hierarchical",))
    assert row.flicker > 0.04  # the edges move 4 px a frame
    assert row.flicker_mc < 0.2 * row.flicker and row.flicker_mc < 0.01


def test_warp_by_a_known_flow_undoes_a_translation() -> None:
    labels = np.zeros((20, 30), dtype=np.int16)
    labels[5:10, 5:10] = 1
    moved = np.roll(labels, 3, axis=1)
    flow = np.zeros((2, 20, 30), dtype=np.float32)
    flow[1] = -3.0  # the previous frame shows at x - 3 what the current one shows at x
    warped, valid = warp_labels(labels, flow)
    assert label_flicker(warped, moved, valid) == 0.0
    assert not valid[:, :3].any() and valid[:, 3:].all()


def test_run_writes_playable_outputs_and_summary(tmp_path: Path, model: ColourModel) -> None:
    labels = [square_labels(16, 8 + 8 * i) for i in range(4)]
    clip = write_clip(tmp_path / "clip.mp4", [labels_image(x) for x in labels])
    masks = tmp_path / "clip_masks.npz"
    np.savez_compressed(
        masks, **{f"mask_{i:05d}": x.astype(np.uint8) for i, x in enumerate(labels)}
    )
    summary = run_video(clip, tmp_path / "out", VideoRunSettings(scales=SCALES), model=model)
    files = summary.files
    assert set(files) == {"overlay", "scales", "frames", "summary"}
    assert not list((tmp_path / "out").glob("*.partial*"))
    for key in ("overlay", "scales"):
        info = probe_video(files[key])
        assert (info.width, info.height, info.frames) == (W, H, 4)
    data = json.loads(files["summary"].read_text())
    assert data["frames"] == 4 and not data["stopped"]
    hmsa = next(r for r in data["flicker_table"] if r["method"] == "hierarchical")
    assert hmsa["miou"] > 0.95
    with np.load(files["frames"]) as npz:
        assert npz["pred_00003"].shape == (H, W)
        assert npz["weights_00000"].shape == (3, H, W)
        assert npz["time"].tolist() == pytest.approx([0, 0.1, 0.2, 0.3], abs=1e-3)
        # weights are quantised effective weights: they sum to about 255 at every pixel
        assert np.abs(npz["weights_00001"].astype(int).sum(0) - 255).max() <= 2


def test_stop_keeps_frames_and_cancel_leaves_no_finished_file(
    tmp_path: Path, model: ColourModel
) -> None:
    clip = write_clip(
        tmp_path / "c.mp4", [labels_image(square_labels(16, 4 * i)) for i in range(6)]
    )
    run = VideoRun(clip, tmp_path / "stopped", VideoRunSettings(scales=(1.0,)), model=model)
    for stats in run.frames():
        if stats.number == 1:
            run.stop()
    assert run.summary is not None and run.summary.stopped and run.summary.frames == 2
    assert probe_video(run.summary.files["overlay"]).frames == 2
    cancelled = VideoRun(clip, tmp_path / "cancelled", VideoRunSettings(scales=(1.0,)), model=model)
    frames = cancelled.frames()
    next(frames)
    frames.close()  # what a cancelled request does to the generator
    assert list((tmp_path / "cancelled").iterdir()) == []


@pytest.mark.parametrize("overlap_max_pixels", [1024 * 1024, 0])  # 0: every frame "large"
def test_a_run_keeps_frame_order_and_restores_torch_threads(
    tmp_path: Path, model: ColourModel, overlap_max_pixels: int
) -> None:
    import torch

    before = torch.get_num_threads()
    clip = write_clip(
        tmp_path / "c.mp4", [labels_image(square_labels(16, 4 * i)) for i in range(3)]
    )
    settings = VideoRunSettings(scales=(1.0,), overlap_max_pixels=overlap_max_pixels)
    summary = run_video(clip, tmp_path / "out", settings, model=model)
    assert summary.frames == 3 and [s.number for s in summary.stats] == [0, 1, 2]
    assert summary.stats[0].flicker and all(
        v > 0 for s in summary.stats[1:] for v in s.flicker.values()
    )  # each frame compared with the one before it: the square moved
    assert torch.get_num_threads() == before


def test_odd_size_is_padded_even_and_rotation_applied(tmp_path: Path, model: ColourModel) -> None:
    odd = np.full((33, 65), BLUE)
    odd[:, :16] = RED
    clip = write_clip(tmp_path / "odd.mp4", [labels_image(odd)] * 2)
    assert (probe_video(clip).width, probe_video(clip).height) == (66, 34)
    rotate_tkhd(clip, 90)
    with VideoReader(clip) as reader:
        frame = next(iter(reader))
    assert reader.info.rotation == -90 and frame.rgb.shape == (66, 34, 3)
    # turned clockwise: the red band on the left is now on top
    assert frame.rgb[:12, :, 0].mean() > 150 and frame.rgb[-12:, :, 0].mean() < 60
    assert any("rotation" in n for n in reader.notices)


def test_large_frames_are_shrunk_to_the_maximum_side(
    tmp_path: Path, model: ColourModel, monkeypatch
) -> None:
    clip = write_clip(tmp_path / "big.mp4", [labels_image(square_labels(16, 16))] * 2)
    monkeypatch.setenv("HMSA_MAX_VIDEO_SIDE", "64")
    video = hmsa_core.infer_video(clip, (1.0,), model=model)
    sizes = {r.size for r in video}
    assert sizes == {(32, 64)}
    assert any("shrunk to 64 x 32" in n for n in video.notices)


def test_bad_input_gets_clear_messages(tmp_path: Path, model: ColourModel) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(ValueError, match="not a readable video"):
        hmsa_core.infer_video(text, model=model)
    with pytest.raises(ValueError, match="empty"):
        hmsa_core.infer_video(b"", model=model)
    with pytest.raises(ValueError, match="no video stream"):
        hmsa_core.infer_video(write_audio_only(tmp_path / "audio.mp4"), model=model)
    good = write_clip(tmp_path / "good.mp4", [labels_image(square_labels(16, 16))] * 10)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])  # moov is at the front (faststart)
    video = hmsa_core.infer_video(truncated, (1.0,), model=model)
    try:
        n = len(list(video))
    except ValueError as exc:  # nothing decodable is also a clear refusal
        assert "truncated" in str(exc)
    else:
        assert n < 10 and any("truncated" in x for x in video.notices)
    head = tmp_path / "head.mp4"
    head.write_bytes(data[:600])
    with pytest.raises(ValueError, match=r"(not a readable video|truncated|no frame)"):
        list(hmsa_core.infer_video(head, (1.0,), model=model))


def test_zero_frame_clip_is_refused(tmp_path: Path, model: ColourModel) -> None:
    import av

    for fmt in ("mp4", "matroska"):
        path = tmp_path / f"empty.{fmt}"
        with av.open(str(path), "w", format=fmt) as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
            container.start_encoding()  # a header, then no frame at all
        with pytest.raises(ValueError, match=r"(no frames|no video frames|not a readable)"):
            list(hmsa_core.infer_video(path, (1.0,), model=model))
    # a run refused on a clip without frames leaves no output behind
    with pytest.raises(ValueError):
        VideoRun(path, tmp_path / "out", VideoRunSettings(scales=(1.0,)), model=model)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_frames_given_as_arrays(model: ColourModel) -> None:
    frames = [labels_image(square_labels(16, 8 * i)) for i in range(3)]
    results = list(hmsa_core.infer_video(frames, (1.0,), model=model, fps=5.0))
    assert [r.time for r in results] == pytest.approx([0.0, 0.2, 0.4])
    assert isinstance(results[0], hmsa_core.InferenceResult)
    with pytest.raises(ValueError, match="no frames"):
        hmsa_core.infer_video([], model=model)
    # a generator is consumed lazily; every and the cap apply as to a file
    video = hmsa_core.infer_video(iter(frames * 3), (1.0,), model=model, every=2, max_frames=3)
    assert [r.frame_index for r in video] == [0, 2, 4]
    assert any("frame cap" in n for n in video.notices)


def test_drive_is_deterministic_and_moves_forward(tmp_path: Path) -> None:
    from hmsa_core.data.drive import DriveSettings, drive_frames, write_drive
    from hmsa_core.data.synthscapes import ROAD

    settings = DriveSettings(size=(64, 128), frames=3, speed=10.0)
    first = list(drive_frames(settings))
    again = list(drive_frames(settings))
    for a, b in zip(first, again):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(first[0].mask, first[2].mask)  # the camera moved
    assert (first[0].mask == ROAD).mean() > 0.1
    clip, masks = write_drive(tmp_path, settings, stem="drive")
    assert probe_video(clip).frames == 3 and not list(tmp_path.glob("*.partial*"))
    with np.load(masks) as npz:
        assert np.array_equal(npz["mask_00002"], first[2].mask.astype(np.uint8))


def test_bundled_clip_is_the_drive_and_its_masks_match() -> None:
    import itertools

    from hmsa_core.data.drive import DRIVE_STEM, DriveSettings, drive_frames

    samples = Path(__file__).resolve().parent.parent / "assets" / "samples"
    clip = samples / f"{DRIVE_STEM}.mp4"
    info = probe_video(clip)
    assert (info.width, info.height, info.frames, info.fps) == (512, 256, 50, 10.0)
    with np.load(samples / f"{DRIVE_STEM}_masks.npz") as npz:
        assert len(npz.files) == 50
        for i, sample in enumerate(itertools.islice(drive_frames(DriveSettings()), 2)):
            assert np.array_equal(npz[f"mask_{i:05d}"], sample.mask.astype(np.uint8))


def test_webcam_frames_go_through_the_lite_model_with_the_rate_shown(
    tmp_path: Path, monkeypatch
) -> None:
    from app.gradio_parts.handlers import Handlers
    from app.gradio_parts.video_tab import live_frame

    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "no_models"))
    handlers = Handlers()
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    overlay, note, times = live_frame(handlers, frame, None)
    overlay, note, times = live_frame(handlers, frame, times)
    assert overlay.shape == (240, 320, 3) and len(times) == 2
    assert "frames/s reached" in note and "320 x 240" in note
    assert live_frame(handlers, None, times)[0] is None


def test_method_labels_equal_remerge_of_the_same_passes() -> None:
    import hmsa_core
    from hmsa_core.data.drive import DriveSettings, drive_frames

    model = hmsa_core.load_model("hmsa-lite")
    sample = next(iter(drive_frames(DriveSettings(size=(64, 128), frames=1))))
    result = hmsa_core.infer(sample.image, SCALES, model=model, cache=None)
    tracker = TemporalTracker(SCALES, model.labels)
    tracker.update(result)
    preds = tracker.method_preds(result)
    assert set(preds) == {"single:0.5", "single:1", "single:2", "mean", "max", "hierarchical"}
    for method, labels in preds.items():
        assert np.array_equal(labels, result.remerge(method).pred.numpy()), method


def test_hmsa_segment_writes_a_clip_s_outputs(tmp_path: Path, capsys) -> None:
    from analysis.segment import main

    clip = write_clip(
        tmp_path / "c.mp4", [labels_image(square_labels(16, 8 * i)) for i in range(3)]
    )
    out = tmp_path / "out"
    assert main([str(clip), "--scales", "0.5", "1", "--out", str(out), "--no-progress"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["c_frames.npz", "c_overlay.mp4", "c_scales.mp4", "c_summary.json"]
    assert json.loads((out / "c_summary.json").read_text())["frames"] == 3
    assert "| HMSA |" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.mp4"), "--out", str(out), "--no-progress"]) == 1
