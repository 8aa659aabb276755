"""Every writer round-trips, renames into place atomically, and cleans up after itself."""

from __future__ import annotations

import os
import zipfile
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from videodepth.errors import InputError, OutputError
from videodepth.io import (
    WRITER_KINDS,
    ColormapVideoWriter,
    ExrWriter,
    MultiWriter,
    NpzWriter,
    Png16Writer,
    SideBySideVideoWriter,
    colorize,
    make_writers,
    read_depth_npz,
    read_exr_folder,
    read_npz_fps,
    read_png16_folder,
)


def _disparity(num_frames=5, height=45, width=67, seed=0):
    return np.random.default_rng(seed).random((num_frames, height, width), dtype=np.float32)


def _rgb(num_frames=5, height=45, width=67, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def _write_all(writer, disparity, rgb=None):
    with writer:
        for index, frame in enumerate(disparity):
            writer.write(index, frame, None if rgb is None else rgb[index])
    return writer.path


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, stream.average_rate


def test_npz_round_trip_is_exact(tmp_path):
    disparity = _disparity()
    path = _write_all(NpzWriter(tmp_path / "clip.npz", fps=29.97, num_frames_hint=3), disparity)
    loaded = np.load(path)
    assert set(loaded.files) == {"depth", "fps"}
    assert loaded["depth"].dtype == np.float32 and np.array_equal(loaded["depth"], disparity)
    assert np.array_equal(read_depth_npz(path), disparity)
    assert read_npz_fps(path) == 29.97
    with zipfile.ZipFile(path) as archive:  # the member is zip64 so long videos past 4 GiB still load
        assert archive.getinfo("depth.npy").file_size == disparity.nbytes + 128
    assert sorted(os.listdir(tmp_path)) == ["clip.npz"]


def test_png16_round_trip_within_half_a_step(tmp_path):
    disparity = _disparity()
    disparity[0, 0, :4] = [0.0, 1.0, 0.5, 1.5]  # last one is clipped
    folder = _write_all(Png16Writer(tmp_path / "clip_png16"), disparity)
    assert sorted(os.listdir(folder)) == [f"{i:06d}.png" for i in range(5)]
    raw = cv2.imread(str(folder / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.ndim == 2
    assert raw[0, :4].tolist() == [0, 65535, 32768, 65535]  # rint(32767.5) is the even 32768
    loaded = read_png16_folder(folder)
    assert loaded.shape == disparity.shape
    assert np.abs(loaded - np.clip(disparity, 0, 1)).max() <= 0.5 / 65535 + 1e-7


def test_exr_round_trip_is_exact_float32(tmp_path):
    import OpenEXR

    disparity = _disparity() * 3 - 1  # EXR keeps values outside [0, 1] too
    folder = _write_all(ExrWriter(tmp_path / "clip_exr"), disparity)
    with OpenEXR.File(str(folder / "000002.exr")) as exr:
        assert list(exr.channels()) == ["Z"]
    loaded = read_exr_folder(folder)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, disparity)


@pytest.mark.parametrize(
    ("fps", "rate"),
    [(29.97, Fraction(2997, 100)), (30000 / 1001, Fraction(30000, 1001)), (24.0, Fraction(24))],
)
def test_colormap_mp4_keeps_count_size_and_exact_fps(tmp_path, fps, rate):
    disparity = np.full((16, 45, 67), 1.0, np.float32)
    disparity[8:] = 0.0
    path = _write_all(ColormapVideoWriter(tmp_path / "depth.mp4", fps, "inferno"), disparity)
    frames, average_rate = _decode(path)
    assert len(frames) == 16
    assert frames[0].shape == (46, 68, 3)  # padded to even for yuv420p
    assert average_rate == rate
    near, far = colorize(np.ones((1, 1)))[0, 0], colorize(np.zeros((1, 1)))[0, 0]
    assert np.abs(frames[0][20, 30].astype(int) - near).max() <= 8
    assert np.abs(frames[15][20, 30].astype(int) - far).max() <= 8


def test_side_by_side_puts_input_left_and_depth_right(tmp_path):
    rgb = np.zeros((4, 64, 96, 3), np.uint8)
    rgb[..., 1] = 200  # green input
    disparity = np.ones((4, 32, 48), np.float32)  # depth at half the input size: input is resized
    path = _write_all(SideBySideVideoWriter(tmp_path / "sbs.mp4", 12.5, "gray"), disparity, rgb)
    frames, average_rate = _decode(path)
    assert len(frames) == 4 and average_rate == Fraction(25, 2)
    assert frames[0].shape == (32, 96, 3)
    assert np.abs(frames[0][16, 20].astype(int) - [0, 200, 0]).max() <= 8
    assert np.abs(frames[0][16, 70].astype(int) - [255, 255, 255]).max() <= 8
    with (
        pytest.raises(ValueError, match="RGB"),
        SideBySideVideoWriter(tmp_path / "x.mp4", 10, "gray") as writer,
    ):
        writer.write(0, disparity[0], None)


def test_make_writers_names_and_multiwriter(tmp_path):
    disparity, rgb = _disparity(3), _rgb(3)
    out = tmp_path / "new" / "out"
    writers = make_writers(
        out, "clip", ["mp4", "sbs", "npz", "png16", "exr", "npz"], 24.0, (45, 67), "turbo", 3
    )
    assert [type(w).__name__ for w in writers] == [
        "ColormapVideoWriter",
        "SideBySideVideoWriter",
        "NpzWriter",
        "Png16Writer",
        "ExrWriter",
    ]
    with MultiWriter(writers) as multi:
        for index in range(3):
            multi.write(index, disparity[index], rgb[index])
    assert sorted(os.listdir(out)) == ["clip.npz", "clip_depth.mp4", "clip_exr", "clip_png16", "clip_sbs.mp4"]
    assert np.array_equal(read_depth_npz(out / "clip.npz"), disparity)


def test_unknown_kind_and_colormap_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown output kind 'gif'.*" + ", ".join(WRITER_KINDS)):
        make_writers(tmp_path, "clip", ["npz", "gif"], 24.0, (8, 8), "inferno", 1)
    with pytest.raises(InputError, match="unknown colour map 'rainbow'"):
        make_writers(tmp_path, "clip", ["mp4"], 24.0, (8, 8), "rainbow", 1)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", WRITER_KINDS)
def test_exception_inside_writer_leaves_nothing_behind(tmp_path, kind):
    disparity, rgb = _disparity(3), _rgb(3)
    (writer,) = make_writers(tmp_path, "clip", [kind], 24.0, (45, 67), "inferno", 3)
    with pytest.raises(RuntimeError, match="boom"), writer:
        writer.write(0, disparity[0], rgb[0])
        writer.write(1, disparity[1], rgb[1])
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_multiwriter_failure_aborts_every_writer(tmp_path):
    writers = make_writers(tmp_path, "clip", list(WRITER_KINDS), 24.0, (45, 67), "inferno", 3)
    with pytest.raises(ValueError, match="shape"), MultiWriter(writers) as multi:
        multi.write(0, _disparity(1)[0], _rgb(1)[0])
        multi.write(1, np.zeros((10, 10), np.float32), _rgb(1)[0])  # wrong size
    assert os.listdir(tmp_path) == []


def test_closing_without_frames_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="no frames"), NpzWriter(tmp_path / "empty.npz"):
        pass
    assert os.listdir(tmp_path) == []


def test_frames_must_arrive_in_order_for_single_files(tmp_path):
    with (
        pytest.raises(ValueError, match="expected frame 0"),
        ColormapVideoWriter(tmp_path / "a.mp4", 24) as writer,
    ):
        writer.write(3, _disparity(1)[0])
    assert os.listdir(tmp_path) == []


def test_existing_outputs_are_replaced_whole(tmp_path):
    folder = tmp_path / "clip_png16"
    folder.mkdir()
    (folder / "999999.png").write_bytes(b"stale")
    (tmp_path / "clip.npz").write_bytes(b"stale")
    _write_all(Png16Writer(folder), _disparity(2))
    _write_all(NpzWriter(tmp_path / "clip.npz"), _disparity(2))
    assert sorted(os.listdir(folder)) == ["000000.png", "000001.png"]
    assert read_depth_npz(tmp_path / "clip.npz").shape == (2, 45, 67)
    assert sorted(os.listdir(tmp_path)) == ["clip.npz", "clip_png16"]


def test_unwritable_output_folder_is_an_output_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="file.txt") as caught:
        make_writers(blocker / "out", "clip", ["npz"], 24.0, (8, 8), "inferno", 1)
    assert "\n" not in str(caught.value)
    with pytest.raises(OutputError):
        NpzWriter(blocker / "clip.npz")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only-mode folder")
def test_read_only_folder_is_an_output_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(OutputError, match="locked"):
            make_writers(locked, "clip", ["png16"], 24.0, (8, 8), "inferno", 1)
    finally:
        locked.chmod(0o700)


def test_readers_reject_missing_outputs(tmp_path):
    with pytest.raises(InputError, match="nothing.npz"):
        read_depth_npz(tmp_path / "nothing.npz")
    with pytest.raises(InputError, match="no .png files"):
        read_png16_folder(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        read_exr_folder(tmp_path / "missing")
