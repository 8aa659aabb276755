"""Server-side checks of ``videodepth serve``, called directly (no browser): uploads, limits, job folders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from videodepth.apps.web import (
    JobFolders,
    ServeConfig,
    WebApp,
    check_int,
    check_job_size,
    check_upload,
    job_frames,
    job_output_size,
    safe_stem,
    zip_folder,
)
from videodepth.errors import InputError
from videodepth.io import RgbVideoWriter, VideoInfo

FPS = 12


@pytest.fixture()
def uploads(tmp_path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    with RgbVideoWriter(root / "clip.mp4", FPS) as writer:  # 12 frames at 12 fps: 1 s
        for index in range(12):
            writer.write_rgb(index, np.full((64, 128, 3), 20 * index, np.uint8))
    (root / "notes.mp4").write_text("this is not a video")
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def test_a_valid_upload_passes_and_reports_its_duration(uploads):
    info = check_upload(str(uploads / "clip.mp4"), ServeConfig(max_seconds=2.0), [uploads])
    assert (info.width, info.height, info.num_frames) == (128, 64, 12)
    assert info.duration_s == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        (None, ServeConfig(), "no video: upload one or load the demo clip first"),
        ("missing.mp4", ServeConfig(), "no longer on the server"),
        (
            "clip.mp4",
            ServeConfig(max_upload_mb=0.001),
            r"the upload is 0\.\d MB; this server accepts at most 0.001 MB",
        ),
        (
            "clip.mp4",
            ServeConfig(max_seconds=0.5),
            "the video is 1.0 s long; this server accepts at most 0.5 s",
        ),
        ("notes.mp4", ServeConfig(), "notes.mp4 is not a readable video"),
        ("photo.png", ServeConfig(), "is an image, not a video"),
    ],
)
def test_bad_uploads_give_one_line_errors(uploads, name, config, message):
    path = None if name is None else str(uploads / name)
    with pytest.raises(InputError, match=message) as error:
        check_upload(path, config, [uploads])
    text = str(error.value)
    assert "\n" not in text
    assert str(uploads) not in text  # server paths are not shown to clients


def test_paths_outside_the_upload_folder_are_refused_without_being_opened(uploads, tmp_path):
    secret = tmp_path / "secret.mp4"
    secret.write_bytes((uploads / "clip.mp4").read_bytes())
    for path in (str(secret), str(uploads / ".." / "secret.mp4"), "/etc/passwd"):
        with pytest.raises(InputError, match="not uploaded to this server"):
            check_upload(path, ServeConfig(), [uploads])
    link = uploads / "link.mp4"
    link.symlink_to(secret)  # a link inside the folder pointing outside is resolved and refused too
    with pytest.raises(InputError, match="not uploaded to this server"):
        check_upload(str(link), ServeConfig(), [uploads])


def test_ui_numbers_are_checked():
    assert check_int(5.0, "steps", 1, 50) == 5
    for value, message in [
        (0, "from 1 to 50"),
        (2.5, "from 1 to 50"),
        ("x", "must be a number"),
        (None, "number"),
    ]:
        with pytest.raises(InputError, match=message):
            check_int(value, "steps", 1, 50)


def test_output_names_come_from_the_upload_name_made_safe():
    assert safe_stem("/tmp/gradio/abc/My Clip (1).mp4") == "My_Clip_1"
    assert safe_stem("/x/../..mp4") == "video"
    assert safe_stem("a/b/ok-name_2.mov") == "ok-name_2"


def test_job_folders_expire_after_the_ttl_and_all_go_at_shutdown(tmp_path):
    jobs = JobFolders(tmp_path / "jobs", ttl_s=60)
    old, fresh = jobs.new(), jobs.new()
    (old / "result.mp4").write_bytes(b"x")
    past = time.time() - 120
    os.utime(old, (past, past))
    assert jobs.sweep() == [old]
    assert not old.exists() and fresh.exists()
    jobs.remove_all()
    assert not (tmp_path / "jobs").exists()


def test_zip_folder_keeps_every_frame(tmp_path):
    import zipfile

    folder = tmp_path / "clip_exr"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index:06d}.exr").write_bytes(bytes([index]) * 10)
    with zipfile.ZipFile(zip_folder(folder, tmp_path / "clip_exr.zip")) as archive:
        assert archive.namelist() == [f"clip_exr/{i:06d}.exr" for i in range(3)]


def test_handlers_turn_user_errors_into_ui_errors_and_keep_going(tmp_path, uploads, monkeypatch):
    import gradio as gr

    monkeypatch.setattr("videodepth.apps.web.upload_roots", lambda: [uploads])
    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    with pytest.raises(gr.Error, match="not a readable video"):
        app.run_depth(str(uploads / "notes.mp4"), "shipped model", "depthcrafter", 5, 448, 0, "inferno")
    with pytest.raises(gr.Error, match="unknown strategy"):
        app.run_depth(str(uploads / "clip.mp4"), "shipped model", "magic", 5, 448, 0, "inferno")
    with pytest.raises(gr.Error, match="max resolution must be a whole number from 64 to 1024"):
        app.run_depth(str(uploads / "clip.mp4"), "shipped model", "depthcrafter", 5, 4096, 0, "inferno")
    with pytest.raises(gr.Error, match="unknown model"):
        app.run_depth(str(uploads / "clip.mp4"), "../../etc", "depthcrafter", 5, 448, 0, "inferno")
    with pytest.raises(gr.Error, match="run depth on a video first"):
        app.apply_effect(None, "fog", 0.25, 0.5, 1, 0.5, 0.1, 0.8, 16, "sbs", 12, 60)
    assert list((tmp_path / "work").glob("job-*")) == []  # nothing was started for refused requests


def test_serve_refuses_a_model_path_that_is_not_a_folder(tmp_path):
    from videodepth.apps.web import serve

    with pytest.raises(InputError, match="--model must be a local model folder"):
        serve(ServeConfig(model=tmp_path / "nope"))


def test_effects_tab_streams_an_effect_over_the_last_result(tmp_path, uploads):
    from videodepth.io import NpzWriter

    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    job = app.jobs.new()
    video = job / "clip.mp4"
    video.write_bytes((uploads / "clip.mp4").read_bytes())
    with NpzWriter(job / "clip.npz", fps=FPS) as writer:
        for index in range(12):
            writer.write(index, np.tile(np.linspace(0, 1, 128, dtype=np.float32), (64, 1)))
    state = {"video": str(video), "npz": str(job / "clip.npz"), "job": str(job), "frames": 12}
    shown, preview, files, status = app.apply_effect(
        state, "matte", 0.25, 0.5, 1, 0.5, 0.1, 0.8, 16, "sbs", 12, 60
    )
    assert Path(shown).name == "clip_matte.mp4" and preview is None
    assert [Path(f).name for f in files] == ["clip_matte.mp4", "clip_matte_frames.zip"]
    assert "12 frames" in status
    shown, preview, files, _ = app.apply_effect(
        state, "pointcloud", 0.25, 0.5, 1, 0.5, 0.1, 0.8, 16, "sbs", 12, 60
    )
    assert shown is None and Path(preview).name == "preview.png"
    assert [Path(f).name for f in files] == ["clip_pointcloud_frames.zip"]


def test_a_run_with_the_shipped_model_says_what_that_model_is(tmp_path, uploads, monkeypatch):
    monkeypatch.setattr("videodepth.apps.web.upload_roots", lambda: [uploads])
    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    shown, files, status, state = app.run_depth(
        str(uploads / "clip.mp4"), "shipped model", "depthcrafter", 1, 128, 4, "inferno"
    )
    assert status.startswith("**Done.**") and "built-in videodepth-small model" in status
    assert Path(shown).name.endswith("_sbs.mp4") and state["frames"] == 4
    assert "**Warning:**" not in status
    _, _, status, _ = app.run_depth(
        str(uploads / "clip.mp4"), "shipped model", "depthcrafter", 3, 128, 4, "inferno"
    )
    assert "**Warning:** 3 steps asked for, but this model scored worse with more than 2" in status


def test_the_geometry_checkbox_runs_tracking_and_says_what_it_found(tmp_path, uploads, monkeypatch):
    monkeypatch.setattr("videodepth.apps.web.upload_roots", lambda: [uploads])
    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    _, files, status, _ = app.run_depth(
        str(uploads / "clip.mp4"), "shipped model", "depthcrafter", 2, 128, 6, "inferno", True
    )
    assert "geometry: " in status and "tracking" in status  # used, or the check that failed, in one line
    assert any(Path(f).name.endswith(".npz") for f in files)


@pytest.fixture(autouse=True)
def restore_gradio_temp_dir(monkeypatch):
    """WebApp points Gradio's temporary folder into its own root; undo that after each test."""
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)


def test_the_server_not_the_client_bounds_the_frames(tmp_path):
    with RgbVideoWriter(tmp_path / "fast.mp4", 1000) as writer:  # 40 frames in 0.04 s: short, but many
        for index in range(40):
            writer.write_rgb(index, np.full((64, 128, 3), index, np.uint8))
    info = check_upload(str(tmp_path / "fast.mp4"), ServeConfig(), [tmp_path])
    config = ServeConfig(max_frames=30)
    with pytest.raises(InputError, match="the video has 40 frames; this server processes at most 30"):
        job_frames(info, 0, config)
    with pytest.raises(InputError, match="at most 30"):
        job_frames(info, 35, config)
    assert job_frames(info, 20, config) == 20 and job_frames(info, 0, ServeConfig()) == 40


def test_outputs_of_large_inputs_are_capped_and_big_jobs_refused_before_they_start(tmp_path):
    from dataclasses import replace

    upload = tmp_path / "big.mp4"
    upload.write_bytes(b"x" * 1000)
    big = VideoInfo(
        path=upload,
        width=7680,
        height=4320,
        fps=24.0,
        num_frames=2,
        duration_s=0.1,
        pix_fmt="yuv420p",
        has_alpha=False,
        is_grayscale=False,
    )
    assert job_output_size(big, ServeConfig()) == "processed"
    assert job_output_size(replace(big, width=1920, height=1080), ServeConfig()) == "original"
    assert check_job_size(big, 2, 448, False, ServeConfig()) < 10  # written at 448x256, not at 8K
    with pytest.raises(
        InputError, match=r"this job would write about \d+ MB; this server allows 50 MB per job"
    ):
        check_job_size(
            replace(big, width=1920, height=1080, num_frames=600), 600, 1024, True, ServeConfig(max_job_mb=50)
        )


def test_gradio_files_live_in_the_server_root_and_go_with_it(tmp_path):
    from videodepth.apps.web import upload_roots

    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    assert upload_roots() == [(tmp_path / "work" / "gradio").resolve()]
    (tmp_path / "work" / "gradio").mkdir()
    (tmp_path / "work" / "gradio" / "upload.mp4").write_bytes(b"x")
    app.jobs.remove_all()
    assert not (tmp_path / "work").exists()


def test_the_steps_default_comes_from_the_model(tmp_path):
    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    assert app.pipelines.default_steps("shipped model") == 2
    demo = app.build()
    sliders = [
        c for c in demo.config["components"] if c["props"].get("label", "").startswith("Denoising steps")
    ]
    assert [s["props"]["value"] for s in sliders] == [2]


def test_a_refused_request_is_one_log_line(tmp_path, uploads, monkeypatch, caplog):
    import gradio as gr

    monkeypatch.setattr("videodepth.apps.web.upload_roots", lambda: [uploads])
    app = WebApp(ServeConfig(work_root=tmp_path / "work"))
    with caplog.at_level("WARNING", logger="videodepth.serve"), pytest.raises(gr.Error) as error:
        app.run_depth(str(uploads / "notes.mp4"), "shipped model", "depthcrafter", 2, 448, 0, "inferno")
    assert error.value.print_exception is False  # Gradio prints no traceback for it
    assert [(r.getMessage().count("\n"), r.exc_info) for r in caplog.records] == [(0, None)]
    assert "refused a request: notes.mp4 is not a readable video" in caplog.records[0].getMessage()


def test_launch_prints_one_line_and_no_share_hint(tmp_path, capsys):
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    app = WebApp(ServeConfig(work_root=tmp_path / "work", port=port))
    demo = app.launch(block=False)
    try:
        printed = capsys.readouterr().out
    finally:
        demo.close()
        app.jobs.remove_all()
    assert printed.strip().splitlines() == [
        f"videodepth serve: listening on http://127.0.0.1:{port}/ (Ctrl-C to stop; job files in {app.jobs.root})"
    ]
    assert "share" not in printed
