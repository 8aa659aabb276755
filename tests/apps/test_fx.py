"""``videodepth fx``: streamed effects over a synthetic clip with known depth, depth readers, bad inputs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from videodepth.apps import effects
from videodepth.apps.depthvideo import PERCENTILE_SAMPLE_BUDGET, measure_range
from videodepth.apps.fx import EFFECTS, FxOptions, make_effect, run_effect
from videodepth.cli import main
from videodepth.errors import InputError
from videodepth.io import NpzWriter, Png16Writer, VideoReader
from videodepth.io.depthfiles import open_depth

T, H, W, FPS = 5, 48, 96, 12


def write_lossless_video(path: Path, frames: np.ndarray, fps: int = FPS) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt, stream.options = "yuv444p", {"crf": "0"}
    for frame in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode(None))
    container.close()
    return path


def scene_frames(num_frames: int = T) -> tuple[np.ndarray, np.ndarray]:
    """The effects' synthetic scene sliding right by 2 px a frame: (rgb [T,H,W,3], disp [T,H,W] in [0,1])."""
    rgb, disp = effects.synthetic_scene(H, W)
    # Stretch to exactly [0, 1] so that the default whole-video min-max normalisation is the identity.
    disp = (disp - disp.min()) / (disp.max() - disp.min())
    frames = np.stack([np.roll(rgb, 2 * t, axis=1) for t in range(num_frames)])
    depth = np.stack([np.roll(disp, 2 * t, axis=1) for t in range(num_frames)]).astype(np.float32)
    return frames, depth


def write_npz(path: Path, depth: np.ndarray) -> Path:
    with NpzWriter(path, fps=FPS) as writer:
        for index, frame in enumerate(depth):
            writer.write(index, frame)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fx")
    frames, depth = scene_frames()
    video = write_lossless_video(root / "clip.mp4", frames)
    decoded = np.stack(list(VideoReader(video, max_res=W, multiple=1)))
    return {
        "root": root,
        "video": video,
        "npz": write_npz(root / "clip.npz", depth),
        "depth": depth,
        "rgb": decoded,
    }


def count_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


# ----------------------------------------------------------------------------------------- per-frame consistency


def test_fog_png_frames_equal_fog_of_each_input_frame_and_mp4_within_codec_tolerance(clip, tmp_path):
    effect = make_effect("fog", density=0.3, near=1.0, far=5.0)
    report = run_effect(effect, clip["video"], clip["npz"], [tmp_path / "fog.mp4", tmp_path / "fog"])
    assert report.num_frames == T and report.depth_range.lo == 0.0 and report.depth_range.hi == 1.0
    pngs = sorted((tmp_path / "fog").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(T)]
    video = decode(tmp_path / "fog.mp4")
    assert video.shape == (T, H, W, 3)
    for index in range(T):
        expected = effects.fog(clip["rgb"][index], clip["depth"][index], 0.3, near=1.0, far=5.0)
        np.testing.assert_array_equal(read_png(pngs[index]), expected)  # PNG is lossless: exact
        error = np.abs(video[index].astype(int) - expected).mean()
        assert error < 4.0, f"frame {index}: mp4 differs from fog() by {error:.2f} on average"
        # ... and the frames are not interchangeable: the command applied frame t's depth to frame t.
        if index:
            assert (
                np.abs(
                    video[index].astype(int)
                    - effects.fog(clip["rgb"][0], clip["depth"][0], 0.3, near=1.0, far=5.0)
                ).mean()
                > 2 * error
            )


def test_whole_video_normalisation_undoes_an_affine_depth_scale(clip, tmp_path):
    npz = write_npz(tmp_path / "scaled.npz", 3.0 * clip["depth"] + 7.0)
    report = run_effect(make_effect("slice", lo=0.3, hi=0.6), clip["video"], npz, [tmp_path / "slice"])
    assert (report.depth_range.lo, report.depth_range.hi) == pytest.approx((7.0, 10.0))
    for index, png in enumerate(sorted((tmp_path / "slice").glob("*.png"))):
        rgba = read_png(png)
        keep = (clip["depth"][index] >= 0.3) & (clip["depth"][index] <= 0.6)
        # Float rounding of the affine round trip can only move pixels lying exactly on a boundary.
        boundary = np.isclose(clip["depth"][index], 0.3, atol=1e-5) | np.isclose(
            clip["depth"][index], 0.6, atol=1e-5
        )
        assert rgba.shape == (H, W, 4)
        assert np.array_equal(rgba[..., 3][~boundary] == 255, keep[~boundary])
        assert (rgba[..., :3][rgba[..., 3] == 0] == 0).all()


def test_percentile_clipping_maps_the_percentiles_to_zero_and_one(clip):
    depth = open_depth(clip["npz"])
    lo, hi = np.percentile(clip["depth"], [5, 95])
    measured = measure_range(depth, "video", clip_percent=5)
    assert (measured.lo, measured.hi) == pytest.approx((lo, hi), abs=1e-6)
    assert clip["depth"].size < PERCENTILE_SAMPLE_BUDGET  # small clip: the estimate saw every value


def test_matte_writes_rgba_frames_and_a_grayscale_alpha_video(clip, tmp_path):
    run_effect(
        make_effect("matte", split=0.5, softness=0.2),
        clip["video"],
        clip["npz"],
        [tmp_path / "matte", tmp_path / "alpha.mp4"],
    )
    video = decode(tmp_path / "alpha.mp4")
    assert video.shape == (T, H, W, 3)
    for index, png in enumerate(sorted((tmp_path / "matte").glob("*.png"))):
        alpha = np.rint(effects.matte(clip["depth"][index], 0.5, 0.2) * 255).astype(np.uint8)
        rgba = read_png(png)
        np.testing.assert_array_equal(rgba[..., 3], alpha)
        np.testing.assert_array_equal(rgba[..., :3], clip["rgb"][index])
        assert np.abs(video[index, ..., 1].astype(int) - alpha).mean() < 4.0


def test_stereo_left_right_writes_two_videos_and_sbs_doubles_the_width(clip, tmp_path):
    report = run_effect(
        make_effect("stereo", mode="left-right", baseline_px=8),
        clip["video"],
        clip["npz"],
        [tmp_path / "view.mp4"],
    )
    assert [p.name for p in report.outputs] == ["view_left.mp4", "view_right.mp4"]
    assert all(count_video_frames(p) == T for p in report.outputs)
    run_effect(make_effect("stereo", mode="sbs"), clip["video"], clip["npz"], [tmp_path / "sbs.mp4"])
    assert decode(tmp_path / "sbs.mp4").shape == (T, H, 2 * W, 3)


def test_refocus_and_colormap_videos_have_every_frame(clip, tmp_path):
    run_effect(
        make_effect("refocus", focus=0.9, aperture=10, max_radius=4),
        clip["video"],
        clip["npz"],
        [tmp_path / "refocus.mp4"],
    )
    assert count_video_frames(tmp_path / "refocus.mp4") == T
    run_effect(
        make_effect("colormap", cmap="turbo", side_by_side=True),
        clip["video"],
        clip["npz"],
        [tmp_path / "colour"],
    )
    first = read_png(tmp_path / "colour" / "000000.png")
    from videodepth.io import colorize

    np.testing.assert_array_equal(first[:, W:], colorize(clip["depth"][0], "turbo"))
    np.testing.assert_array_equal(first[:, :W], clip["rgb"][0])


def test_pointcloud_writes_one_ply_per_frame_and_a_three_panel_preview(clip, tmp_path):
    run_effect(
        make_effect("pointcloud", stride=2, preview_frame=1), clip["video"], clip["npz"], [tmp_path / "pc"]
    )
    plys = sorted((tmp_path / "pc").glob("*.ply"))
    assert len(plys) == T
    header = plys[0].read_bytes().split(b"end_header")[0].decode()
    assert f"element vertex {(H // 2) * (W // 2)}" in header
    preview = read_png(tmp_path / "pc" / "preview.png")
    assert preview.shape == (H, W + W + H, 3)
    np.testing.assert_array_equal(preview[:, :W], clip["rgb"][1])


def test_depth_of_another_size_is_resized_to_the_video(clip, tmp_path):
    small = np.stack([cv2.resize(d, (W // 2, H // 2), interpolation=cv2.INTER_LINEAR) for d in clip["depth"]])
    report = run_effect(
        make_effect("fog"), clip["video"], write_npz(tmp_path / "small.npz", small), [tmp_path / "fog"]
    )
    assert report.size == (H, W) and "resized" in report.notes[0]
    assert read_png(tmp_path / "fog" / "000000.png").shape == (H, W, 3)


def test_max_res_and_process_length_shrink_the_output(clip, tmp_path):
    report = run_effect(
        make_effect("fog"),
        clip["video"],
        clip["npz"],
        [tmp_path / "fog.mp4"],
        FxOptions(max_res=64, process_length=3),
    )
    assert report.size == (32, 64) and count_video_frames(tmp_path / "fog.mp4") == 3
    with pytest.raises(InputError, match="max resolution must be at least 64"):
        run_effect(
            make_effect("fog"), clip["video"], clip["npz"], [tmp_path / "x.mp4"], FxOptions(max_res=32)
        )


# ----------------------------------------------------------------------------------------- depth readers


def test_every_depth_format_streams_the_same_frames(clip, tmp_path):
    depth = clip["depth"]
    np.savez_compressed(tmp_path / "compressed.npz", depth=depth.astype(np.float64))
    np.save(tmp_path / "plain.npy", depth)
    with Png16Writer(tmp_path / "png16") as writer:
        for index, frame in enumerate(depth):
            writer.write(index, frame)
    for source, tolerance in [
        (clip["npz"], 0),
        (tmp_path / "compressed.npz", 1e-7),
        (tmp_path / "plain.npy", 0),
        (tmp_path / "png16", 1 / 65535),
    ]:
        video = open_depth(source)
        assert (video.num_frames, video.size) == (T, (H, W))
        frames = list(video.frames())
        assert all(frame.dtype == np.float32 for frame in frames)
        np.testing.assert_allclose(np.stack(frames), depth, atol=tolerance)


# ----------------------------------------------------------------------------------------- bad inputs


def test_length_mismatch_is_a_one_line_error_and_writes_nothing(clip, tmp_path):
    npz = write_npz(tmp_path / "short.npz", clip["depth"][:3])
    with pytest.raises(InputError, match=r"the video has 5 frames but the depth short.npz has 3") as error:
        run_effect(make_effect("fog"), clip["video"], npz, [tmp_path / "out.mp4"])
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == [npz]


def test_bad_depth_midway_leaves_no_partial_output(clip, tmp_path):
    bad = clip["depth"].copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        run_effect(
            make_effect("fog"),
            clip["video"],
            write_npz(tmp_path / "nan.npz", bad),
            [tmp_path / "out.mp4", tmp_path / "frames"],
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz"]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fog", {"density": -1}, "density must be in"),
        ("slice", {"lo": 0.8, "hi": 0.2}, "slice range is empty"),
        ("stereo", {"mode": "wobble"}, "stereo mode must be"),
        ("pointcloud", {"stride": 0}, "stride must be in"),
        ("colormap", {"cmap": "rainbow"}, "unknown colour map"),
        ("sparkle", {}, "unknown effect 'sparkle'"),
    ],
)
def test_bad_parameters_fail_before_any_work(name, params, message):
    with pytest.raises(InputError, match=message):
        make_effect(name, **params)


def test_bad_depth_files(clip, tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "two.npz", "w") as archive:
        archive.writestr("a.npy", b"")
        archive.writestr("b.npy", b"")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4), np.float32))
    cases = [
        (tmp_path / "missing.npz", "depth not found"),
        (tmp_path / "junk.npz", "not a readable .npz"),
        (tmp_path / "two.npz", "no 'depth' array"),
        (tmp_path / "flat.npy", r"shape \[T, H, W\]"),
        (clip["video"], "depth must be an .npz"),
    ]
    for name, image in [
        ("eight_bit", np.zeros((4, 6), np.uint8)),
        ("colour", np.zeros((4, 6, 3), np.uint16)),
    ]:
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "000000.png"), image)
    cases += [
        (tmp_path / "eight_bit", "expected a 16-bit PNG"),
        (tmp_path / "colour", "expected a grayscale PNG"),
    ]
    for path, message in cases:
        with pytest.raises(InputError, match=message):
            open_depth(path)


def test_output_kind_follows_the_path(clip, tmp_path):
    with pytest.raises(InputError, match="use a .mp4 file or a folder"):
        run_effect(make_effect("fog"), clip["video"], clip["npz"], [tmp_path / "fog.avi"])
    with pytest.raises(InputError, match="pointcloud writes a folder"):
        run_effect(make_effect("pointcloud"), clip["video"], clip["npz"], [tmp_path / "cloud.mp4"])


def test_cli_errors_are_one_line_with_a_non_zero_exit(clip, tmp_path, capsys):
    short = write_npz(tmp_path / "short.npz", clip["depth"][:2])
    for argv in (
        ["fx", "fog", str(clip["video"]), "--depth", str(short), "--out", str(tmp_path / "a.mp4")],
        ["fx", "fog", str(clip["video"]), "--depth", str(tmp_path / "nope.npz"), "--out", "x.mp4"],
        ["fx", "fog", str(tmp_path / "nope.mp4"), "--depth", str(short), "--out", "x.mp4"],
        ["fx", "slice", str(clip["video"]), "--depth", str(short), "--lo", "2", "--out", "x"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("videodepth: error: ") and "\n" not in err, err
    with pytest.raises(SystemExit) as exit_info:
        main(["fx", "sparkle", str(clip["video"]), "--out", "x.mp4"])
    assert exit_info.value.code != 0
    assert "invalid choice: 'sparkle'" in capsys.readouterr().err


def test_cli_applies_the_effect(clip, tmp_path, capsys):
    out = tmp_path / "fog.mp4"
    assert (
        main(
            [
                "fx",
                "fog",
                str(clip["video"]),
                "--depth",
                str(clip["npz"]),
                "--density",
                "0.5",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out and count_video_frames(out) == T
    assert set(EFFECTS) == {"fog", "slice", "matte", "refocus", "stereo", "pointcloud", "colormap"}


def test_cli_without_depth_predicts_it_with_the_model(tmp_path, capsys):
    from videodepth.models.architectures import random_model

    model = tmp_path / "tiny"
    random_model("videodepth", "tiny").save_pretrained(model)
    frames, _ = scene_frames(4)
    video = write_lossless_video(tmp_path / "clip.mp4", frames)
    out = tmp_path / "fog"
    assert (
        main(
            [
                "fx",
                "fog",
                str(video),
                "--model",
                str(model),
                "--steps",
                "1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(list(out.glob("*.png"))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "fog", "tiny"]  # no temporary left


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_help_shows_the_effects_own_defaults(name):
    import argparse
    import dataclasses

    from videodepth.apps.commands import _effect_options

    parser = argparse.ArgumentParser()
    names = _effect_options(name, parser)
    fields = {f.name: f.default for f in dataclasses.fields(EFFECTS[name])}
    assert set(names) <= set(fields)
    for action in parser._actions:
        default = fields.get(action.dest)
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert f"(default {default:g})" in action.help, action.dest
