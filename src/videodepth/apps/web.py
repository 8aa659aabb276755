"""The browser front end, ``videodepth serve``: a Gradio app around ``run_video`` and the effects.

Safety rules for a public demo, each enforced here:

* the client never names a file: the only paths this code opens come from Gradio's own upload
  folder (checked by :func:`check_upload`), the server's job folders, or the operator's ``--model``;
* uploads are limited in size (by Gradio before they land, and again here), in duration and in
  frames (the server's limit, not the client's); outputs are capped in resolution, and a job whose
  files would exceed the per-job budget is refused before it starts;
* one job at a time per worker (every job event shares one concurrency group of size 1), with a
  bounded queue;
* each job gets its own folder under a per-server temporary root, which also holds Gradio's
  uploads and cached copies; folders older than the TTL are removed when the next job starts, and
  the whole root at shutdown;
* a refused request is one line in the server log, never a traceback;
* it binds to 127.0.0.1 unless the operator passes ``--host``.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from videodepth.errors import InputError, VideoDepthError
from videodepth.io import COLORMAPS, VideoInfo, probe

SHIPPED_MODEL = "shipped model"
JOB_CONCURRENCY_ID = "videodepth-job"
EFFECT_NAMES = ("fog", "slice", "matte", "refocus", "stereo", "pointcloud")
# Bytes a job writes per output pixel and frame: the npz (float32 at most), the EXR frames and
# their zip (float32 each), both mp4s; plus 4 per processing pixel for the raw prediction buffer
# and 8 more with geometry (fused depth, confidence). Measured: 9.7 per output pixel on 8K input.
BYTES_PER_OUTPUT_PIXEL = 13.0
BYTES_PER_PROCESSING_PIXEL = 4.0
logger = logging.getLogger("videodepth.serve")


@dataclass
class ServeConfig:
    model: Path | None = None  # an extra local model folder chosen by the operator
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 50.0
    max_seconds: float = 20.0
    max_res_limit: int = 1024
    max_frames: int = 600  # frames one job may process, whatever the client asks
    max_output_side: int = 1920  # larger inputs get outputs at the processing size
    max_job_mb: float = 2048.0  # files one job may write
    queue_size: int = 16
    job_ttl_s: float = 3600.0
    device: str = "auto"
    threads: int | None = None  # CPU threads (None: videodepth.threads' default)
    work_root: Path | None = None  # default: a fresh folder in the system temp directory


# --------------------------------------------------------------------------------------------- checks


def upload_roots() -> list[Path]:
    """Where Gradio stores uploaded files (and copies of files this server returns)."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve()]


def check_upload(path: str | os.PathLike[str] | None, config: ServeConfig, roots: list[Path]) -> VideoInfo:
    """Validate an uploaded video; raise a one-line :class:`InputError` saying what is wrong.

    Only files inside ``roots`` (Gradio's upload folder) are accepted, so a path made up by a client
    is never opened.
    """
    if not path:
        raise InputError("no video: upload one or load the demo clip first")
    file = Path(path).resolve()
    if not any(file.is_relative_to(root) for root in roots):
        raise InputError("refusing a file that was not uploaded to this server")
    if not file.is_file():
        raise InputError("the uploaded file is no longer on the server; upload it again")
    size_mb = file.stat().st_size / 2**20
    if size_mb > config.max_upload_mb:
        raise InputError(
            f"the upload is {size_mb:.1f} MB; this server accepts at most {config.max_upload_mb:g} MB"
        )
    try:
        info = probe(file)
    except InputError as error:
        # The message names the server-side path; the user only knows the file's name.
        raise InputError(str(error).replace(str(file), file.name)) from None
    if info.duration_s > config.max_seconds + 1e-6:
        raise InputError(
            f"the video is {info.duration_s:.1f} s long; this server accepts at most {config.max_seconds:g} s"
        )
    return info


def job_frames(info: VideoInfo, frame_limit: int, config: ServeConfig) -> int:
    """Frames a job will process: the client's limit (0 = all), within the server's."""
    frames = info.num_frames if frame_limit == 0 else min(frame_limit, info.num_frames)
    if frames > config.max_frames:
        raise InputError(
            f"the video has {info.num_frames} frames; this server processes at most "
            f"{config.max_frames}: set the frame limit to {config.max_frames} or less"
        )
    return frames


def job_output_size(info: VideoInfo, config: ServeConfig) -> str:
    """``original`` when the input fits the server's output cap, else ``processed``."""
    return "original" if max(info.width, info.height) <= config.max_output_side else "processed"


def check_job_size(info: VideoInfo, frames: int, max_res: int, geometry: bool, config: ServeConfig) -> float:
    """Refuse a job whose files would exceed the per-job budget; return the estimate in MB."""
    from videodepth.io import processing_size

    processing = processing_size(info.height, info.width, max_res)
    output = (info.height, info.width) if job_output_size(info, config) == "original" else processing
    per_frame = (
        BYTES_PER_OUTPUT_PIXEL * output[0] * output[1]
        + BYTES_PER_PROCESSING_PIXEL * (3 if geometry else 1) * processing[0] * processing[1]
    )
    estimate_mb = (frames * per_frame + info.path.stat().st_size) / 2**20
    if estimate_mb > config.max_job_mb:
        raise InputError(
            f"this job would write about {estimate_mb:.0f} MB; this server allows "
            f"{config.max_job_mb:g} MB per job: lower the max resolution or the frame limit"
        )
    return estimate_mb


def check_int(value: Any, name: str, low: int, high: int) -> int:
    """A whole number in ``[low, high]`` from a UI widget, or a one-line :class:`InputError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not number.is_integer() or not low <= number <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value}")
    return int(number)


def safe_stem(path: str | os.PathLike[str]) -> str:
    """A file-name stem made of safe characters only (output names follow the upload's name)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem).strip("._")[:60]
    return stem or "video"


# --------------------------------------------------------------------------------------------- jobs


class JobFolders:
    """One temporary folder per job under ``root``; old ones are swept, all removed at shutdown."""

    def __init__(self, root: Path | None, ttl_s: float) -> None:
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="videodepth-serve-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._lock = threading.Lock()

    def new(self) -> Path:
        self.sweep()
        with self._lock:
            return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))

    def sweep(self, now: float | None = None) -> list[Path]:
        """Remove job folders older than the TTL; return them."""
        now = time.time() if now is None else now
        removed = []
        with self._lock:
            for folder in self.root.glob("job-*"):
                if folder.is_dir() and now - folder.stat().st_mtime > self.ttl_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip a folder's files (streamed, one at a time) into ``target``."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, arcname=f"{folder.name}/{file.name}")
    return target


# --------------------------------------------------------------------------------------------- models


class Pipelines:
    """Pipelines by UI choice, loaded on first use and kept (jobs run one at a time)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def choices(self) -> list[str]:
        return [SHIPPED_MODEL] + ([self.config.model.name] if self.config.model else [])

    def default_steps(self, choice: str) -> int:
        """The sampling steps a model's own config asks for (2 for the shipped one), read
        without loading its weights."""
        from videodepth.models.config import CONFIG_NAME
        from videodepth.models.default import DEFAULT_MODEL_DIR

        folder = DEFAULT_MODEL_DIR if choice == SHIPPED_MODEL else self.config.model
        try:
            return int(json.loads((Path(folder) / CONFIG_NAME).read_text())["steps"])
        except (OSError, ValueError, KeyError, TypeError):
            return 5  # a published layout without our config: the papers' setting

    def get(self, choice: str) -> Any:
        from videodepth.loading import load_pipeline

        if choice not in self.choices:
            raise InputError(f"unknown model {choice!r}; choose one of: {', '.join(self.choices)}")
        with self._lock:
            if choice not in self._loaded:
                model = None if choice == SHIPPED_MODEL else self.config.model
                self._loaded[choice] = load_pipeline(
                    model, device=self.config.device, threads=self.config.threads, say=None
                )
            return self._loaded[choice]


# --------------------------------------------------------------------------------------------- the app


def _gradio_error(error: VideoDepthError) -> Exception:
    """The client sees the message; the server log gets one line, no traceback."""
    logger.warning("refused a request: %s", error)
    return gr.Error(str(error), print_exception=False)


class WebApp:
    """The handlers behind the page; :meth:`build` lays the page out."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.jobs = JobFolders(config.work_root, config.job_ttl_s)
        self.pipelines = Pipelines(config)
        # Gradio's uploads and the copies it serves live in our root, so they go when we go.
        os.environ["GRADIO_TEMP_DIR"] = str(self.jobs.root / "gradio")

    # -- handlers ----------------------------------------------------------------------------
    def load_demo(self) -> str:
        """Copy the built-in demo clip into the server's folder (Gradio then serves its own copy)."""
        from videodepth.synth.demo import demo_video

        target = self.jobs.root / "examples" / "demo.mp4"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(demo_video(), target)
        return str(target)

    def run_depth(
        self,
        video: str | None,
        model: str,
        strategy: str,
        steps: float,
        max_res: float,
        frame_limit: float,
        cmap: str,
        geometry: bool = False,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's way to report progress)
    ) -> tuple[Any, ...]:
        try:
            return self._run_depth(video, model, strategy, steps, max_res, frame_limit, cmap, bool(geometry))
        except VideoDepthError as error:
            raise _gradio_error(error) from None

    def _run_depth(
        self,
        video: str | None,
        model: str,
        strategy: str,
        steps: float,
        max_res: float,
        frame_limit: float,
        cmap: str,
        geometry: bool = False,
    ) -> tuple[Any, ...]:
        from videodepth.geometry import GeometryOptions
        from videodepth.inference.runner import InputOptions, OutputOptions, run_video
        from videodepth.inference.settings import RunSettings
        from videodepth.inference.strategies import STRATEGIES
        from videodepth.io import check_colormap

        info = check_upload(video, self.config, upload_roots())
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        steps = check_int(steps, "steps", 1, 50)
        max_res = check_int(max_res, "max resolution", 64, self.config.max_res_limit)
        frame_limit = check_int(frame_limit, "frame limit", 0, self.config.max_frames)
        frames = job_frames(info, frame_limit, self.config)
        check_job_size(info, frames, max_res, geometry, self.config)
        cmap = check_colormap(cmap)
        pipeline = self.pipelines.get(model)
        job = self.jobs.new()
        source = job / f"{safe_stem(video)}{Path(video).suffix.lower()}"
        shutil.copyfile(video, source)
        settings = RunSettings.for_model(pipeline.config, strategy=strategy, steps=steps)
        report = run_video(
            pipeline,
            source,
            settings,
            InputOptions(max_res=max_res, process_length=frames, max_frames=self.config.max_frames),
            OutputOptions(
                out_dir=job / "depth",
                kinds=("sbs", "mp4", "npz", "exr") + (("cameras",) if geometry else ()),
                cmap=cmap,
                size=job_output_size(info, self.config),
                max_side=self.config.max_output_side,
            ),
            model_id=model,
            progress=True,
            geometry=GeometryOptions() if geometry else None,
        )
        by_suffix = {path.name: path for path in report.outputs}
        sbs = next(p for n, p in by_suffix.items() if n.endswith("_sbs.mp4"))
        colour = next(p for n, p in by_suffix.items() if n.endswith("_depth.mp4"))
        npz = next(p for n, p in by_suffix.items() if n.endswith(".npz"))
        exr = zip_folder(
            next(p for n, p in by_suffix.items() if n.endswith("_exr")), job / f"{source.stem}_exr.zip"
        )
        cameras = [str(p) for n, p in by_suffix.items() if n.endswith("_cameras.json")]
        notice = pipeline.config.notice or pipeline.config.note
        status = f"**Done.** {report.summary()}" + (f"\n\n**Note:** {notice}" if notice else "")
        if warning := pipeline.config.steps_warning(settings.steps):
            status += f"\n\n**Warning:** {warning}"
        state = {"video": str(source), "npz": str(npz), "job": str(job), "frames": report.num_frames}
        return str(sbs), [str(colour), str(npz), str(exr), *cameras], status, state

    def apply_effect(
        self,
        state: dict | None,
        effect: str,
        density: float,
        lo: float,
        hi: float,
        split: float,
        softness: float,
        focus: float,
        aperture: float,
        stereo_mode: str,
        baseline: float,
        fov: float,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (Gradio's way to report progress)
    ) -> tuple[Any, ...]:
        try:
            return self._apply_effect(
                state, effect, density, lo, hi, split, softness, focus, aperture, stereo_mode, baseline, fov
            )
        except VideoDepthError as error:
            raise _gradio_error(error) from None

    def _apply_effect(
        self,
        state: dict | None,
        effect: str,
        density: float,
        lo: float,
        hi: float,
        split: float,
        softness: float,
        focus: float,
        aperture: float,
        stereo_mode: str,
        baseline: float,
        fov: float,
    ) -> tuple[Any, ...]:
        from videodepth.apps.fx import make_effect, run_effect

        if not state or not Path(state["job"]).is_dir():
            raise InputError("no depth yet (or it has expired): run depth on a video first")
        params: dict[str, dict[str, Any]] = {
            "fog": {"density": density},
            "slice": {"lo": lo, "hi": hi},
            "matte": {"split": split, "softness": softness},
            "refocus": {"focus": focus, "aperture": aperture},
            "stereo": {"mode": stereo_mode, "baseline_px": baseline},
            "pointcloud": {"fov_deg": fov, "stride": 2},
        }
        if effect not in params:
            raise InputError(f"unknown effect {effect!r}; choose one of: {', '.join(params)}")
        job = Path(state["job"])
        fx_dir = job / "fx"
        fx_dir.mkdir(exist_ok=True)
        stem = f"{Path(state['video']).stem}_{effect}"
        video_out = fx_dir / f"{stem}.mp4"
        frames_out = fx_dir / f"{stem}_frames"
        outputs = {
            "pointcloud": [frames_out],
            "matte": [video_out, frames_out],
            "slice": [video_out, frames_out],
        }.get(effect, [video_out])
        report = run_effect(
            make_effect(effect, **params[effect]), state["video"], state["npz"], outputs, progress=True
        )
        downloads, shown, preview = [], None, None
        for path in report.outputs:
            if path.is_dir():
                downloads.append(str(zip_folder(path, path.with_suffix(".zip"))))
                if (path / "preview.png").exists():
                    preview = str(path / "preview.png")
            else:
                shown = str(path)
                downloads.append(str(path))
        return shown, preview, downloads, f"**{effect}**: {report.summary()}"

    # -- layout ------------------------------------------------------------------------------
    def build(self) -> Any:
        from videodepth.inference.strategies import STRATEGIES

        config = self.config
        ttl = int(max(60, config.job_ttl_s))
        with gr.Blocks(
            title="videodepth", analytics_enabled=False, delete_cache=(max(60, ttl // 4), ttl)
        ) as demo:
            gr.Markdown(
                "# videodepth\nTemporally consistent depth for a video. Upload a clip (at most "
                f"{config.max_upload_mb:g} MB and {config.max_seconds:g} s) or load the demo clip, then run."
            )
            state = gr.State(None)
            with gr.Tab("Depth"):
                with gr.Row():
                    with gr.Column():
                        video = gr.Video(
                            label="Input video", sources=["upload"], include_audio=True, elem_id="input-video"
                        )
                        demo_button = gr.Button("Load the demo clip", elem_id="demo-button")
                    with gr.Column():
                        model = gr.Dropdown(self.pipelines.choices, value=SHIPPED_MODEL, label="Model")
                        strategy = gr.Dropdown(list(STRATEGIES), value="depthcrafter", label="Strategy")
                        steps = gr.Slider(
                            1,
                            25,
                            value=self.pipelines.default_steps(SHIPPED_MODEL),
                            step=1,
                            label="Denoising steps",
                            info="default: what the chosen checkpoint asks for",
                        )
                        max_res = gr.Slider(
                            64,
                            config.max_res_limit,
                            value=min(448, config.max_res_limit),
                            step=64,
                            label="Max resolution (longest side)",
                        )
                        frame_limit = gr.Number(
                            0,
                            precision=0,
                            minimum=0,
                            maximum=config.max_frames,
                            label=f"Frame limit (0 = all; this server: at most {config.max_frames})",
                        )
                        cmap = gr.Dropdown(list(COLORMAPS), value="inferno", label="Colour map")
                        geometry = gr.Checkbox(
                            False,
                            label="Use the camera's motion (track it and fuse its "
                            "multi-view geometry; slower)",
                            elem_id="geometry",
                        )
                        run_button = gr.Button("Run", variant="primary", elem_id="run-button")
                result = gr.Video(label="Input | depth", elem_id="result-video", interactive=False)
                downloads = gr.File(
                    label="Downloads (depth mp4, npz, EXR zip)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="downloads",
                )
                status = gr.Markdown(elem_id="status")
            with gr.Tab("Effects"):
                gr.Markdown("Apply an effect to the last depth result (streamed frame by frame).")
                effect = gr.Dropdown(list(EFFECT_NAMES), value="fog", label="Effect")
                with gr.Row():
                    density = gr.Slider(0, 2, value=0.25, label="fog: density")
                    lo = gr.Slider(0, 1, value=0.5, label="slice: lowest disparity kept")
                    hi = gr.Slider(0, 1, value=1.0, label="slice: highest disparity kept")
                    split = gr.Slider(0, 1, value=0.5, label="matte: split disparity")
                    softness = gr.Slider(0, 1, value=0.1, label="matte: softness")
                with gr.Row():
                    focus = gr.Slider(0, 1, value=0.8, label="refocus: focus disparity")
                    aperture = gr.Slider(0, 64, value=16, label="refocus: aperture (px per disparity unit)")
                    stereo_mode = gr.Dropdown(["sbs", "anaglyph"], value="sbs", label="stereo: mode")
                    baseline = gr.Slider(-64, 64, value=12, step=1, label="stereo: baseline (px)")
                    fov = gr.Slider(10, 120, value=60, label="pointcloud: field of view (deg)")
                effect_button = gr.Button("Apply", variant="primary", elem_id="effect-button")
                effect_video = gr.Video(label="Effect", interactive=False)
                effect_preview = gr.Image(label="Point cloud preview", interactive=False)
                effect_files = gr.File(label="Downloads", file_count="multiple", interactive=False)
                effect_status = gr.Markdown()

            demo_button.click(self.load_demo, outputs=video, queue=False)
            model.change(self.pipelines.default_steps, inputs=model, outputs=steps, queue=False)
            run_button.click(
                self.run_depth,
                inputs=[video, model, strategy, steps, max_res, frame_limit, cmap, geometry],
                outputs=[result, downloads, status, state],
                concurrency_id=JOB_CONCURRENCY_ID,
                concurrency_limit=1,
                api_name="depth",
            )
            effect_button.click(
                self.apply_effect,
                inputs=[
                    state,
                    effect,
                    density,
                    lo,
                    hi,
                    split,
                    softness,
                    focus,
                    aperture,
                    stereo_mode,
                    baseline,
                    fov,
                ],
                outputs=[effect_video, effect_preview, effect_files, effect_status],
                concurrency_id=JOB_CONCURRENCY_ID,
                concurrency_limit=1,
                api_name="effect",
            )
        demo.queue(default_concurrency_limit=1, max_size=config.queue_size)
        return demo

    def launch(self, block: bool = True) -> Any:
        """Start serving; with ``block=False`` return at once (the server runs in a thread)."""
        demo = self.build()
        atexit.register(self.jobs.remove_all)
        demo.launch(
            server_name=self.config.host,
            server_port=self.config.port,
            max_file_size=int(self.config.max_upload_mb * 2**20),
            prevent_thread_lock=True,
            show_error=True,
            quiet=True,
            ssr_mode=False,
            inbrowser=False,
            share=False,
        )
        # Our own line instead of Gradio's banner, which suggests a public share link.
        print(
            f"videodepth serve: listening on {demo.local_url} (Ctrl-C to stop; job files in {self.jobs.root})",
            flush=True,
        )
        if block:
            demo.block_thread()
        return demo


def serve(config: ServeConfig) -> None:
    """``videodepth serve``: build the app, serve until interrupted, then remove every job file."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if config.model is not None and not Path(config.model).is_dir():
        raise InputError(f"--model must be a local model folder, got {config.model}")
    if config.max_upload_mb <= 0 or config.max_seconds <= 0:
        raise InputError("--max-upload-mb and --max-seconds must be positive")
    from videodepth.threads import set_threads

    # resolved once: every pipeline the server loads later uses the same count, not a new sample
    config = dataclasses.replace(config, threads=set_threads(config.threads))
    app = WebApp(config)
    # A service manager stops us with SIGTERM: turn it into a normal exit so the job files go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        app.launch(block=True)
    finally:
        app.jobs.remove_all()
