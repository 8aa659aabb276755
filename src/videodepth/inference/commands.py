"""``videodepth run``: depth for one or more videos with the shipped model or a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from videodepth.argtypes import (
    device_name,
    finite_float,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from videodepth.choices import COLORMAPS, DTYPE_NAMES, GEOMETRY_KINDS, STRATEGIES, SVD_HUB_ID, WRITER_KINDS
from videodepth.errors import InputError, VideoDepthError
from videodepth.inference.options import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_OUTPUT_SIDE,
    InputOptions,
    OutputOptions,
    check_geometry_kinds,
    check_input,
    output_names,
    output_stem,
)

# torch, diffusers and the pipeline are imported where they are used, so that parsing
# arguments (and every argument error) takes a fraction of a second.
if TYPE_CHECKING:
    import torch

    from videodepth.geometry import GeometryOptions
    from videodepth.inference.engine import RunSettings
    from videodepth.inference.pipeline import VideoDepthPipeline


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", help="model folder or hub id (default: the small model shipped with videodepth)")
    group.add_argument("--family", default="auto", choices=["auto", "depthcrafter", "chronodepth"],
                       help="family of a published UNet checkpoint (auto: from its name)")
    group.add_argument("--base", default=SVD_HUB_ID,
                       help="SVD img2vid-xt folder or hub id that published UNets plug into")
    group.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:1, mps")
    group.add_argument("--dtype", default="auto", choices=["auto", *DTYPE_NAMES],
                       help="auto: float16 on GPU, float32 on CPU")
    group.add_argument("--cpu-offload", action="store_true",
                       help="keep models in RAM and move each to the GPU only while it runs")
    group.add_argument("--threads", type=positive_int,
                       help="CPU threads for torch and OpenCV (default: one per available core)")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (defaults come from the model)")
    group.add_argument("--strategy", choices=STRATEGIES, help="long-video strategy")
    group.add_argument("--steps", type=positive_int, help="denoising steps")
    group.add_argument("--guidance", type=non_negative_float, help="classifier-free guidance scale (1 = off)")
    group.add_argument("--window", type=positive_int, help="frames per window")
    group.add_argument("--overlap", type=non_negative_int, help="depthcrafter: frames shared by consecutive windows")
    group.add_argument("--context", type=non_negative_int, help="chronodepth/replacement/naive: context frames per window")
    group.add_argument("--sigma-epsilon", type=finite_float, help="chronodepth: noise label of the context (c_noise)")
    group.add_argument("--no-noise-init", dest="noise_init", action="store_false", default=None,
                       help="depthcrafter ablation: start overlaps from pure noise")
    group.add_argument("--blend", choices=["linear", "average"], help="depthcrafter: how overlaps are merged")
    group.add_argument("--seed", type=non_negative_int, default=42)
    group.add_argument("--noise", choices=["frame", "reference"], default="frame",
                       help="frame: noise keyed by frame index (streams and resumes exactly); "
                            "reference: the references' draw order (parity checks)")
    group.add_argument("--decode-chunk-size", type=positive_int, help="frames decoded at once")


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but this PyTorch build sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps asked for, but this machine has no Apple GPU (MPS)")
    return device


def load_pipeline(args: argparse.Namespace) -> VideoDepthPipeline:
    import torch

    from videodepth.inference.pipeline import VideoDepthPipeline
    from videodepth.models.bundle import DepthModel
    from videodepth.models.default import load_default_model
    from videodepth.threads import set_threads

    set_threads(getattr(args, "threads", None))
    device = resolve_device(args.device)
    auto = torch.float16 if device.type == "cuda" else torch.float32
    dtype = auto if args.dtype == "auto" else getattr(torch, args.dtype)
    if args.cpu_offload and device.type == "cpu":
        raise InputError("--cpu-offload needs a GPU device")
    model = DepthModel.from_pretrained(args.model, args.family, args.base, dtype) if args.model else load_default_model()
    if model.config.note:
        print(f"note: {model.config.note}", file=sys.stderr)
    if model.config.notice:
        banner = "!" * 100
        print(f"{banner}\n{model.config.notice}\n{banner}", file=sys.stderr)
    return VideoDepthPipeline(model, device, dtype, cpu_offload=args.cpu_offload)


def settings_from_args(args: argparse.Namespace, pipeline: VideoDepthPipeline) -> RunSettings:
    from videodepth.inference.engine import RunSettings

    settings = RunSettings.for_model(
        pipeline.config, strategy=args.strategy, steps=args.steps, guidance=args.guidance, window=args.window,
        overlap=args.overlap, context=args.context, sigma_epsilon=args.sigma_epsilon, seed=args.seed,
        noise=args.noise, noise_init=args.noise_init, blend=args.blend, decode_chunk_size=args.decode_chunk_size,
    )
    if warning := pipeline.config.steps_warning(settings.steps):
        print(f"warning: {warning}", file=sys.stderr)
    return settings


OUTPUT_KINDS = WRITER_KINDS + GEOMETRY_KINDS


def _parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(OUTPUT_KINDS)}")
    return kinds


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    """``fx,fy,cx,cy`` in the input video's pixels."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(v == v and abs(v) != float("inf") for v in values) or min(values[:2]) <= 0:
        raise argparse.ArgumentTypeError("give fx,fy,cx,cy in the video's pixels, focal lengths positive")
    return values  # type: ignore[return-value]


def add_geometry_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("geometry (depth from the footage's own camera motion)")
    group.add_argument("--geometry", action="store_true",
                       help="track the camera (pycolmap) and fuse its multi-view points with the model's depth")
    group.add_argument("--intrinsics", type=parse_intrinsics, metavar="FX,FY,CX,CY",
                       help="known camera intrinsics in the video's pixels (default: estimated)")


def geometry_from_args(args: argparse.Namespace) -> GeometryOptions | None:
    if args.intrinsics is not None and not args.geometry:
        raise InputError("--intrinsics needs --geometry")
    if not args.geometry:
        return None
    from videodepth.geometry import GeometryOptions, TrackingOptions

    return GeometryOptions(tracking=TrackingOptions(intrinsics=args.intrinsics))


def _optional_positive(text: str) -> float | None:
    """A positive frame rate, or -1 (keep the input's)."""
    value = finite_float(text)
    if value == -1:
        return None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 or -1 (keep), got {text}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="predict depth for videos",
        description="Predict temporally consistent depth for one or more videos (or image folders).",
    )
    parser.add_argument("videos", nargs="*", type=Path, help="video files or folders of images")
    parser.add_argument("--demo", action="store_true", help="also run on the built-in demo clip")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_geometry_arguments(parser)
    group = parser.add_argument_group("input")
    group.add_argument("--max-res", type=int_at_least(64), help="longest side for processing (rounded to multiples of 64)")
    group.add_argument("--target-fps", type=_optional_positive, help="subsample to this frame rate (-1: keep)")
    group.add_argument("--process-length", type=int_at_least(1, special={-1: "all"}), help="process at most this many frames (-1: all)")
    group.add_argument("--fps", type=positive_float, default=24.0, help="frame rate of image folders")
    group.add_argument("--max-frames", type=positive_int, default=DEFAULT_MAX_FRAMES,
                       help="refuse inputs with more frames to process than this (a guard against runaway jobs)")
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, default=Path("outputs"), help="output folder")
    group.add_argument("--save", type=_parse_kinds, default=("mp4", "npz"),
                       help=f"comma-separated outputs from {','.join(OUTPUT_KINDS)} "
                            "(cameras, ply and conf need --geometry)")
    group.add_argument("--cmap", default="inferno", choices=COLORMAPS)
    group.add_argument("--npz-float16", action="store_true",
                       help="store the npz depth as float16: half the size, precision 5e-4")
    group.add_argument("--output-size", default="original", choices=["original", "processed"])
    group.add_argument("--max-output-side", type=int_at_least(64), default=DEFAULT_MAX_OUTPUT_SIDE,
                       help="refuse outputs larger than this many pixels on a side")
    group.add_argument("--resume", action="store_true", help="continue an interrupted run from its last window")
    group.add_argument("--keep-work", action="store_true", help="keep the raw prediction buffer")
    group.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    videos = _unique_inputs([*args.videos, *([_demo_video()] if args.demo else [])])
    if not videos:
        raise InputError("no input: give one or more videos, or --demo")
    geometry = geometry_from_args(args)
    check_geometry_kinds(args.save, geometry)
    inputs = InputOptions(
        max_res=args.max_res or InputOptions.max_res, target_fps=args.target_fps,
        process_length=None if args.process_length is None or args.process_length < 0 else args.process_length,
        folder_fps=args.fps, max_frames=args.max_frames,
    )
    outputs = OutputOptions(out_dir=args.out, kinds=args.save, cmap=args.cmap, size=args.output_size,
                            keep_work=args.keep_work, max_side=args.max_output_side,
                            npz_float16=args.npz_float16)
    jobs, failures = _checked_jobs(videos, inputs, outputs)  # before the model loads
    if not jobs:
        return 1
    from videodepth.inference.runner import run_video

    pipeline = load_pipeline(args)
    settings = settings_from_args(args, pipeline)
    inputs.max_res = args.max_res or pipeline.config.max_res
    for video, name in jobs:
        try:
            report = run_video(pipeline, video, settings, inputs, outputs, resume=args.resume,
                               model_id=str(args.model or "default"), progress=not args.no_progress,
                               geometry=geometry, name=name)
        except VideoDepthError as error:
            if len(videos) == 1:
                raise
            print(f"videodepth: error: {error}", file=sys.stderr)
            failures += 1
            continue
        print(report.summary())
        for path in report.outputs:
            print(f"  wrote {path}")
        pipeline.timer.seconds.clear()
    return 1 if failures else 0


def _demo_video() -> Path:
    from videodepth.data.demo import demo_video

    return demo_video()


def _unique_inputs(videos: list[Path]) -> list[Path]:
    """Each input once (the same file given twice is processed once)."""
    unique: dict[Path, Path] = {}
    for video in videos:
        key = video.resolve()
        if key in unique:
            print(f"note: {video} is given more than once; processing it once", file=sys.stderr)
        unique.setdefault(key, video)
    return list(unique.values())


def _checked_jobs(videos: list[Path], inputs: InputOptions,
                  outputs: OutputOptions) -> tuple[list[tuple[Path, str]], int]:
    """(input, output name) of every input that passes the header checks; one bad input of
    several is reported and skipped, a single bad input is the error."""
    jobs, failures = [], 0
    for video, name in zip(videos, output_names(videos), strict=True):
        try:
            check_input(video, inputs, outputs)
        except VideoDepthError as error:
            if len(videos) == 1:
                raise
            print(f"videodepth: error: {error}", file=sys.stderr)
            failures += 1
            continue
        if name != output_stem(video):
            print(f"note: outputs of {video} are named {name} (another input has the same name)", file=sys.stderr)
        jobs.append((video, name))
    return jobs, failures
