"""End to end: ``videodepth serve`` driven in headless Chromium the way a person uses it.

Needs Debian's chromium (``apt-get install chromium``) and the ``playwright`` Python package (its own
browser download is not used). Set ``VIDEODEPTH_UPDATE_SCREENSHOT=1`` to refresh docs/images/web_ui.png.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import av
import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FRAMES, HEIGHT, WIDTH = 12, 64, 128
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "web_ui.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_clip(path: Path) -> Path:
    import cv2

    from videodepth.io import RgbVideoWriter

    # Smooth colour blobs (upsampled noise) that slide left by 4 pixels a frame.
    coarse = np.random.default_rng(0).integers(0, 256, (4, 8, 3), dtype=np.uint8)
    texture = cv2.resize(coarse, (2 * WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    with RgbVideoWriter(path, fps=12) as writer:
        for index in range(FRAMES):
            writer.write_rgb(index, np.ascontiguousarray(texture[:, 4 * index : 4 * index + WIDTH]))
    return path


def save_small_png(png: bytes, path: Path, width: int = 800) -> None:
    """Downscale a screenshot and store it with a 64-colour palette (a few tens of kB for the docs)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=64).save(path, optimize=True)


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """The web app on a free local port with a tiny random model; yields its URL."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)  # the app points it into its own root
    from videodepth.apps.web import ServeConfig, WebApp
    from videodepth.models.architectures import random_model

    model = tmp_path / "tiny"
    random_model("videodepth", "tiny").save_pretrained(model)
    app = WebApp(
        ServeConfig(
            model=model, port=free_port(), max_upload_mb=5, max_seconds=10, work_root=tmp_path / "jobs"
        )
    )
    demo = app.launch(block=False)
    try:
        yield f"http://127.0.0.1:{app.config.port}/"
    finally:
        demo.close()
        app.jobs.remove_all()


def test_upload_run_download_and_a_bad_upload(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    clip = write_clip(tmp_path / "clip.mp4")
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("this is not a video")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(server, wait_until="domcontentloaded")
            page.wait_for_selector("#run-button", timeout=30_000)
            upload = page.locator("#input-video input[type=file]")

            # A file that is not a video: a clear error in the page, and the server keeps serving.
            upload.set_input_files(str(not_a_video))
            page.locator("#run-button").click()
            page.get_by_text("notes.mp4 is not a readable video").first.wait_for(timeout=20_000)
            assert page.request.get(server).ok

            # A real clip with the operator's model: run, wait for the result, download it.
            page.reload(wait_until="domcontentloaded")
            page.wait_for_selector("#run-button", timeout=30_000)
            upload.set_input_files(str(clip))
            page.wait_for_selector("#input-video video", timeout=20_000)
            page.get_by_label("Model").click()
            page.get_by_role("option", name="tiny").click()
            started = time.monotonic()
            page.locator("#run-button").click()
            # The progress bar follows the run's own frame counter.
            page.locator("#result-video").get_by_text(re.compile(rf"\d+/{FRAMES} frame")).first.wait_for(
                timeout=30_000
            )
            result = page.locator("#result-video video")
            result.wait_for(timeout=45_000)
            page.get_by_text("Done.").wait_for(timeout=10_000)
            elapsed = time.monotonic() - started

            response = page.request.get(result.get_attribute("src"))
            assert response.ok
            downloaded = tmp_path / "result.mp4"
            downloaded.write_bytes(response.body())
            assert count_frames(downloaded) == FRAMES
            with av.open(str(downloaded)) as container:
                stream = container.streams.video[0]
                assert (stream.width, stream.height) == (2 * WIDTH, HEIGHT)  # input | depth
            files = page.locator("#downloads").inner_text().replace("\n", "")
            for name in ("clip_depth.mp4", "clip.npz", "clip_exr.zip"):
                assert name in files, files

            page.screenshot(path=str(tmp_path / "web_ui.png"), full_page=True)
            if os.environ.get("VIDEODEPTH_UPDATE_SCREENSHOT") == "1":
                save_small_png(page.screenshot(full_page=True), SCREENSHOT)
            assert elapsed < 45
        finally:
            browser.close()
