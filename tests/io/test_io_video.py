"""VideoReader / probe / processing_size on tiny synthetic videos."""

from __future__ import annotations

import inspect
import logging
import shutil
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from iohelpers import decoded_levels, frame_level, index_of_level, write_video

import videodepth.io.video as video_module
from videodepth.errors import InputError
from videodepth.io import VideoReader, probe, processing_size


@pytest.mark.parametrize(
    ("height", "width", "max_res", "expected"),
    [
        (80, 96, 1024, (64, 128)),  # 1.25 -> 1, 1.5 -> 2 multiples
        (480, 640, 1024, (512, 640)),  # 7.5 rounds to the even 8
        (160, 96, 1024, (128, 128)),  # 2.5 rounds to the even 2 (Python round, as the references)
        (201, 333, 1024, (192, 320)),
        (45, 67, 1024, (64, 64)),
        (10, 10, 1024, (64, 64)),  # never below one multiple
        (1080, 1920, 1024, (576, 1024)),  # 1088x1920 > 1024: scale the original by 1024/1920
        (1920, 1080, 512, (512, 256)),  # 1080 * 512/1920 = 288 -> 4.5 multiples -> 4
        (1080, 1920, 64, (64, 64)),
        (1000, 1000, 1000, (1024, 1024)),  # rounding may overshoot max_res by < half a multiple
    ],
)
def test_processing_size_hand_computed(height, width, max_res, expected):
    assert processing_size(height, width, max_res) == expected


def test_processing_size_other_multiple():
    assert processing_size(80, 96, 1024, multiple=32) == (64, 96)  # 2.5 -> 2 multiples, 3 -> 3


def test_max_res_below_64_is_rejected(make_video):
    with pytest.raises(InputError, match="at least 64"):
        processing_size(80, 96, 32)
    with pytest.raises(InputError, match="at least 64"):
        VideoReader(make_video(), max_res=32)


def test_probe_reports_the_original_stream(make_video):
    path = make_video(num_frames=16, width=96, height=80, rate=30)
    info = probe(path)
    assert (info.width, info.height, info.num_frames, info.fps) == (96, 80, 16, 30.0)
    assert info.duration_s == pytest.approx(16 / 30, abs=1e-3)
    assert info.path == path
    assert not info.has_alpha and not info.is_grayscale


def test_reader_yields_all_frames_lazily(make_video, monkeypatch):
    reader = VideoReader(make_video(num_frames=16, width=96, height=80), max_res=1024)
    assert reader.size == (64, 128)
    assert (reader.num_frames, reader.fps, reader.stride) == (16, 30.0, 1)

    decoded = []
    original = video_module._decode_file

    def counting_decode(info):
        for item in original(info):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(video_module, "_decode_file", counting_decode)
    frames = iter(reader)
    assert inspect.isgenerator(frames)
    assert decoded == []  # nothing is decoded before the first frame is asked for
    first = next(frames)
    assert len(decoded) == 1
    rest = list(frames)
    assert len(decoded) == 16 and len(rest) == 15
    for frame in [first, *rest]:
        assert frame.shape == (64, 128, 3) and frame.dtype == np.uint8
    assert decoded_levels([first, *rest]) == [frame_level(i) for i in range(16)]


def test_odd_sizes_are_resized(make_video):
    for width, height, expected in [(67, 45, (64, 64)), (333, 201, (192, 320))]:
        reader = VideoReader(make_video(f"odd{width}.mkv", num_frames=3, width=width, height=height))
        frames = list(reader)
        assert reader.size == expected
        assert [f.shape for f in frames] == [(*expected, 3)] * 3
        assert decoded_levels(frames) == [frame_level(i) for i in range(3)]


def test_h264_mp4_is_read(make_video):
    path = make_video("clip.mp4", codec="libx264", pix_fmt="yuv420p", num_frames=10)
    frames = list(VideoReader(path))
    assert len(frames) == 10
    assert np.abs(np.array(decoded_levels(frames)) - [frame_level(i) for i in range(10)]).max() <= 2


@pytest.mark.parametrize(
    ("target_fps", "sources", "fps", "stride"),
    [
        (10, [0, 3, 6, 9, 12, 15], 10.0, 3),
        (15, [0, 2, 4, 6, 8, 10, 12, 14], 15.0, 2),
        # k/12 s -> nearest frame; Matroska stores ms, so frame i sits at round(1000 i / 30) ms:
        # 5/12 s = 416.7 ms is nearer 433 (frame 13) than 400; 250 ms ties 233/267 -> earlier (7).
        (12, [0, 2, 5, 7, 10, 13, 15], 12.0, 2),
        (40, list(range(16)), 30.0, 1),  # above the input rate: keep every frame
        (None, list(range(16)), 30.0, 1),
    ],
)
def test_target_fps_subsamples_by_time(make_video, target_fps, sources, fps, stride):
    reader = VideoReader(make_video(num_frames=16, rate=30), target_fps=target_fps)
    levels = decoded_levels(list(reader))
    assert [index_of_level(level) for level in levels] == sources
    assert (reader.fps, reader.stride, reader.num_frames) == (fps, stride, len(sources))


def test_variable_frame_rate_resamples_by_timestamps(make_video):
    pts_ms = [0, 40, 80, 300, 340, 380, 700, 740, 1000]
    path = make_video("vfr.mkv", num_frames=len(pts_ms), rate=25, pts_ms=pts_ms)
    assert len(list(VideoReader(path))) == len(pts_ms)  # no target: every frame, no repeats
    frames = list(VideoReader(path, target_fps=10))
    # For each k/10 s the nearest timestamp (ties to the earlier); the gaps repeat frames.
    assert [index_of_level(level) for level in decoded_levels(frames)] == [0, 2, 3, 3, 5, 5, 6, 6, 7, 8, 8]


def test_process_length_caps_output(make_video):
    path = make_video(num_frames=16)
    reader = VideoReader(path, process_length=5)
    assert reader.num_frames == 5
    assert decoded_levels(list(reader)) == [frame_level(i) for i in range(5)]
    reader = VideoReader(path, target_fps=10, process_length=4)
    assert reader.num_frames == 4
    assert [index_of_level(v) for v in decoded_levels(list(reader))] == [0, 3, 6, 9]
    assert len(list(VideoReader(path, process_length=-1))) == 16
    with pytest.raises(InputError, match="process length"):
        VideoReader(path, process_length=0)


@pytest.mark.parametrize("kwargs", [{}, {"target_fps": 10}, {"process_length": 9}])
def test_frames_from_start_is_the_tail(make_video, kwargs):
    reader = VideoReader(make_video(num_frames=16), **kwargs)
    full = list(reader)
    for start in (0, 2, len(full) - 1, len(full), len(full) + 3):
        tail = list(reader.frames(start))
        assert len(tail) == len(full[start:])
        assert all(np.array_equal(a, b) for a, b in zip(tail, full[start:], strict=True))


def test_grayscale_input_becomes_rgb_with_one_warning(make_video, caplog):
    path = make_video("gray.mkv", pix_fmt="gray", num_frames=4)
    with caplog.at_level(logging.WARNING, logger="videodepth.io.video"):
        reader = VideoReader(path)
        frames = list(reader)
    assert reader.info.is_grayscale and not reader.info.has_alpha
    assert all(np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2]) for f in frames)
    assert decoded_levels(frames) == [frame_level(i) for i in range(4)]
    assert len([r for r in caplog.records if "grayscale" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "name", "rgba", "tolerance"),
    [
        ("png", "rgba", "alpha.mov", (200, 100, 50, 128), 0),
        ("qtrle", "argb", "alpha_rle.mov", (200, 100, 50, 128), 0),
        ("ffv1", "yuva420p", "alpha.mkv", (200, 100, 50, 128), 3),
        ("ffv1", "ya8", "gray_alpha.mkv", (120, 120, 120, 128), 1),
    ],
)
def test_alpha_is_composited_over_black(make_video, caplog, codec, pix_fmt, name, rgba, tolerance):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = make_video(name, codec=codec, pix_fmt=pix_fmt, num_frames=3, width=67, height=45, rgba=rgba)
    with caplog.at_level(logging.WARNING, logger="videodepth.io.video"):
        reader = VideoReader(path)
        frames = list(reader)
    assert reader.info.has_alpha and reader.info.pix_fmt == pix_fmt
    expected = np.rint(np.array(rgba[:3]) * rgba[3] / 255)  # compositing over black
    for frame in frames:
        assert frame.shape == (64, 64, 3)
        assert np.abs(frame.reshape(-1, 3).astype(int) - expected).max() <= tolerance
    assert len([r for r in caplog.records if "alpha" in r.getMessage()]) == 1


def test_image_folder_is_a_video(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(12):  # names 1..12 sort naturally, not as strings
        image = np.full((45, 67, 3), frame_level(index), np.uint8)
        if index == 3:  # a 16-bit grayscale frame among 8-bit colour ones
            image = np.full((45, 67), frame_level(index) * 257, np.uint16)
        cv2.imwrite(str(folder / f"frame_{index + 1}.png"), image)
    (folder / "notes.txt").write_text("not a frame")
    reader = VideoReader(folder)
    assert (reader.fps, reader.num_frames, reader.size) == (24.0, 12, (64, 64))
    assert decoded_levels(list(reader)) == [frame_level(i) for i in range(12)]
    reader = VideoReader(folder, target_fps=12, folder_fps=24)
    assert [index_of_level(v) for v in decoded_levels(list(reader))] == [0, 2, 4, 6, 8, 10]
    assert VideoReader(folder, folder_fps=10).fps == 10.0


def _truncate(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _noise_only(path, codec):
    """A valid container whose video packets are all noise."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(5):
            packet = av.Packet(bytes(range(200)))
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, index, index, Fraction(1, 30)
            out.mux(packet)
    return path


def _garbage_packets(path, codec, good_frames, bad_frames):
    """A stream whose first ``good_frames`` packets are real and the rest are noise."""
    source = write_video(
        path.with_name("source_" + path.name), num_frames=good_frames, codec=codec, width=32, height=32
    )
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        packets = [p for p in src.demux(video=0) if p.size][:good_frames]
        for index in range(good_frames + bad_frames):
            packet = packets[index] if index < good_frames else av.Packet(bytes(range(200)))
            packet.stream, packet.pts, packet.dts = stream, index, index
            packet.time_base = Fraction(1, 30)
            out.mux(packet)
    return path


def _not_video_cases(tmp_path, make_video):
    text = tmp_path / "notes.mp4"
    text.write_text("hello\n" * 20)
    png_as_mp4 = tmp_path / "picture.mp4"
    cv2.imwrite(str(tmp_path / "picture.png"), np.zeros((32, 32, 3), np.uint8))
    shutil.copy(tmp_path / "picture.png", png_as_mp4)
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    h264 = make_video("broken.mp4", codec="libx264", pix_fmt="yuv420p")
    header_only = make_video("headeronly.mkv")
    header_only.write_bytes(
        header_only.read_bytes()[: header_only.read_bytes().find(bytes.fromhex("1F43B675"))]
    )
    return {
        "missing": (tmp_path / "missing.mp4", "not found"),
        "directory": (empty_dir, "no .png"),
        "text": (text, "not a readable video"),
        "png renamed": (png_as_mp4, "image, not a video"),
        "png": (tmp_path / "picture.png", "image, not a video"),
        "truncated mp4": (_truncate(h264, 0.5), "not a readable video"),
        "header only": (header_only, "not a readable video"),
        "undecodable": (_noise_only(tmp_path / "noise.mkv", "ffv1"), "cannot decode the first frame"),
        "no frames": (_noise_only(tmp_path / "noise264.mkv", "libx264"), "no decodable"),
        "tiny": (make_video("tiny.mkv", width=6, height=6, num_frames=1), "at least 8x8"),
    }


def test_unusable_inputs_raise_one_line_input_errors(tmp_path, make_video):
    for case, (path, message) in _not_video_cases(tmp_path, make_video).items():
        with pytest.raises(InputError) as caught:
            list(VideoReader(path))
        text = str(caught.value)
        assert path.name in text and message in text, case
        assert "\n" not in text, case


def test_absurd_processing_size_is_rejected(make_video):
    path = make_video("wide.mkv", width=8400, height=16, num_frames=1)
    with pytest.raises(InputError, match="wide.mkv.*exceeds 8192"):
        VideoReader(path, max_res=10000)
    assert VideoReader(path).size == (64, 1024)


def _collect_until_error(reader):
    good = []
    with pytest.raises(InputError) as caught:
        for frame in reader:
            good.append(frame)
    return good, str(caught.value)


def test_truncated_stream_yields_good_frames_then_fails(make_video):
    path = _truncate(make_video("cut.mkv", num_frames=16), 0.5)
    good, message = _collect_until_error(VideoReader(path))
    assert 0 < len(good) < 16
    assert decoded_levels(good) == [frame_level(i) for i in range(len(good))]
    assert "cut.mkv" in message and f"frame {len(good)}" in message


def test_corrupt_packet_mid_stream_names_the_frame(tmp_path):
    path = _garbage_packets(tmp_path / "midway.mkv", "ffv1", good_frames=4, bad_frames=3)
    good, message = _collect_until_error(VideoReader(path))
    assert len(good) == 4
    assert "midway.mkv" in message and "frame 4" in message
