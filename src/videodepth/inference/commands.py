"""``videodepth run``: depth for one or more videos with the shipped model or a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from videodepth.argtypes import finite_float, int_at_least, positive_float, positive_int
from videodepth.arguments import (
    add_geometry_arguments,
    add_model_arguments,
    add_sampling_arguments,
    geometry_from_args,
    pipeline_from_args,
    settings_from_args,
)
from videodepth.choices import COLORMAPS, GEOMETRY_KINDS, WRITER_KINDS
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

OUTPUT_KINDS = WRITER_KINDS + GEOMETRY_KINDS


def _parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in OUTPUT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(OUTPUT_KINDS)}")
    return kinds


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
        "run",
        help="predict depth for videos",
        description="Predict temporally consistent depth for one or more videos (or image folders).",
    )
    parser.add_argument("videos", nargs="*", type=Path, help="video files or folders of images")
    parser.add_argument("--demo", action="store_true", help="also run on the built-in demo clip")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_geometry_arguments(parser)
    group = parser.add_argument_group("input")
    group.add_argument(
        "--max-res", type=int_at_least(64), help="longest side for processing (rounded to multiples of 64)"
    )
    group.add_argument(
        "--target-fps", type=_optional_positive, help="subsample to this frame rate (-1: keep)"
    )
    group.add_argument(
        "--process-length",
        type=int_at_least(1, special={-1: "all"}),
        help="process at most this many frames (-1: all)",
    )
    group.add_argument("--fps", type=positive_float, default=24.0, help="frame rate of image folders")
    group.add_argument(
        "--max-frames",
        type=positive_int,
        default=DEFAULT_MAX_FRAMES,
        help="refuse inputs with more frames to process than this (a guard against runaway jobs)",
    )
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, default=Path("outputs"), help="output folder")
    group.add_argument(
        "--save",
        type=_parse_kinds,
        default=("mp4", "npz"),
        help=f"comma-separated outputs from {','.join(OUTPUT_KINDS)} (cameras, ply and conf need --geometry)",
    )
    group.add_argument("--cmap", default="inferno", choices=COLORMAPS)
    group.add_argument(
        "--npz-float16",
        action="store_true",
        help="store the npz depth as float16: half the size, precision 5e-4",
    )
    group.add_argument("--output-size", default="original", choices=["original", "processed"])
    group.add_argument(
        "--max-output-side",
        type=int_at_least(64),
        default=DEFAULT_MAX_OUTPUT_SIDE,
        help="refuse outputs larger than this many pixels on a side",
    )
    group.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last window"
    )
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
        max_res=args.max_res or InputOptions.max_res,
        target_fps=args.target_fps,
        process_length=None
        if args.process_length is None or args.process_length < 0
        else args.process_length,
        folder_fps=args.fps,
        max_frames=args.max_frames,
    )
    outputs = OutputOptions(
        out_dir=args.out,
        kinds=args.save,
        cmap=args.cmap,
        size=args.output_size,
        keep_work=args.keep_work,
        max_side=args.max_output_side,
        npz_float16=args.npz_float16,
    )
    intrinsics = geometry.tracking.intrinsics if geometry else None
    jobs, failures = _checked_jobs(videos, inputs, outputs, intrinsics)  # before the model loads
    if not jobs:
        return 1
    from videodepth.inference.runner import run_video

    pipeline = pipeline_from_args(args)
    settings = settings_from_args(args, pipeline)
    inputs.max_res = args.max_res or pipeline.config.max_res
    for video, name in jobs:
        try:
            report = run_video(
                pipeline,
                video,
                settings,
                inputs,
                outputs,
                resume=args.resume,
                model_id=str(args.model or "default"),
                progress=not args.no_progress,
                geometry=geometry,
                name=name,
            )
        except VideoDepthError as error:
            if len(videos) == 1:
                raise
            print(f"videodepth: error: {error}", file=sys.stderr)
            failures += 1
            continue
        print(report.summary())
        for path in report.outputs:
            print(f"  wrote {path}")
    return 1 if failures else 0


def _demo_video() -> Path:
    from videodepth.synth.demo import demo_video

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


def _checked_jobs(
    videos: list[Path],
    inputs: InputOptions,
    outputs: OutputOptions,
    intrinsics: tuple[float, ...] | None = None,
) -> tuple[list[tuple[Path, str]], int]:
    """(input, output name) of every input that passes the header checks; one bad input of
    several is reported and skipped, a single bad input is the error."""
    jobs, failures = [], 0
    for video, name in zip(videos, output_names(videos), strict=True):
        try:
            check_input(video, inputs, outputs, intrinsics)
        except VideoDepthError as error:
            if len(videos) == 1:
                raise
            print(f"videodepth: error: {error}", file=sys.stderr)
            failures += 1
            continue
        if name != output_stem(video):
            print(
                f"note: outputs of {video} are named {name} (another input has the same name)",
                file=sys.stderr,
            )
        jobs.append((video, name))
    return jobs, failures
