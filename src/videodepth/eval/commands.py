"""``videodepth bench``: speed and memory measurements."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from videodepth.argtypes import int_at_least, non_negative_int, positive_float, positive_int
from videodepth.arguments import add_threads_argument
from videodepth.errors import InputError


def register(subparsers) -> None:
    register_eval(subparsers)
    register_bench(subparsers)
    register_ablations(subparsers)
    register_geometry_report(subparsers)


def register_geometry_report(subparsers) -> None:
    from videodepth.arguments import add_model_arguments, add_sampling_arguments

    parser = subparsers.add_parser(
        "geometry-report",
        help="what camera tracking and fusion give on each clip (CSV + contact sheets)",
        description="For each clip: the model's depth, camera tracking, every geometry check, whether the "
        "geometry was used or which check failed, seconds per frame, and a contact sheet "
        "(frame | learned | fused | confidence). Finished clips are skipped when run again.",
    )
    parser.add_argument("clips", type=Path, nargs="+", help="videos or image folders")
    parser.add_argument("--out", type=Path, default=Path("geometry_report"))
    parser.add_argument(
        "--max-frames", type=positive_int, default=60, help="frames per clip (from the start)"
    )
    parser.add_argument("--max-res", type=int_at_least(64), default=448)
    parser.add_argument("--no-progress", action="store_true")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    parser.set_defaults(func=geometry_report_command)


def geometry_report_command(args: argparse.Namespace) -> int:
    from videodepth.arguments import pipeline_from_args, settings_from_args
    from videodepth.eval.geometry_report import ReportOptions, run_report
    from videodepth.geometry import GeometryOptions

    missing = [str(p) for p in args.clips if not p.exists()]
    if missing:
        raise InputError(f"no such clip: {missing[0]}")
    if args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    pipeline = pipeline_from_args(args)
    settings = settings_from_args(args, pipeline)
    options = ReportOptions(max_frames=args.max_frames, max_res=args.max_res)
    csv_path = run_report(
        pipeline, args.clips, settings, GeometryOptions(), options, args.out, progress=not args.no_progress
    )
    print(f"per-clip results: {csv_path}; contact sheets: {args.out}/*_sheet.png")
    return 0


def register_ablations(subparsers) -> None:
    from videodepth.arguments import add_model_arguments

    parser = subparsers.add_parser(
        "ablations",
        help="reproduce the papers' ablations with one model",
        description="Strategies, window length, steps and single-frame evaluation on one or more datasets; "
        "resumable; writes Markdown tables.",
    )
    parser.add_argument(
        "roots", type=Path, nargs="+", help="dataset folders (e.g. SynthBench, RGB-D folders)"
    )
    parser.add_argument("--out", type=Path, default=Path("ablations"))
    parser.add_argument(
        "--report",
        type=Path,
        help="write the tables and figures into this Markdown file, between its ablation markers (the rest of the file is kept)",
    )
    parser.add_argument("--max-res", type=int_at_least(64), default=448)
    parser.add_argument("--max-frames", type=positive_int)
    parser.add_argument("--limit", type=positive_int, help="only the first N sequences of each dataset")
    parser.add_argument("--seed", type=non_negative_int, default=42)
    add_model_arguments(parser)
    parser.set_defaults(func=ablations_command)


def ablations_command(args: argparse.Namespace) -> int:
    from videodepth.arguments import pipeline_from_args
    from videodepth.eval.ablations import run_ablations, write_report
    from videodepth.eval.runner import EvalOptions

    pipeline = pipeline_from_args(args)
    report_dir = args.report.parent if args.report else None
    sections = []
    for root in args.roots:
        options = EvalOptions(
            dataset=root.name, max_res=args.max_res, max_frames=args.max_frames, limit=args.limit
        )
        sections.append(
            run_ablations(
                pipeline,
                root,
                args.out / root.name,
                options,
                str(args.model or "default"),
                args.seed,
                figures_dir=report_dir / "images" / "results" if report_dir else None,
                link_from=report_dir,
            )
        )
    text = "\n".join(sections)
    print(text)
    if args.report:
        write_report(args.report, text)
    return 0


def register_eval(subparsers) -> None:
    from videodepth.arguments import (
        add_geometry_arguments,
        add_model_arguments,
        add_sampling_arguments,
    )

    parser = subparsers.add_parser(
        "eval",
        help="accuracy and temporal consistency on a dataset",
        description="Predict every sequence of a dataset (SynthBench, converted benchmarks, RGB-D folders, "
        "DepthCrafter's extracted benchmarks) and score it on the DepthCrafter protocol "
        "(AbsRel, delta1-3, RMSE with one scale and shift per video), TAE and flicker. "
        "Finished videos are skipped when run again.",
    )
    parser.add_argument("root", type=Path, help="dataset folder (or a single sequence)")
    parser.add_argument(
        "--dataset",
        default="auto",
        help="sintel, scannet, kitti, bonn, nyu (max depth and length of the protocol) or auto",
    )
    parser.add_argument("--out", type=Path, default=Path("eval_results"))
    parser.add_argument("--label", default="", help="name of this configuration in the tables")
    parser.add_argument("--max-res", type=int_at_least(64), default=448)
    parser.add_argument("--max-frames", type=positive_int)
    parser.add_argument("--limit", type=positive_int, help="only the first N sequences")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--register-depth",
        type=_registration_argument,
        metavar="auto|FOCAL,TX,TY",
        help="first move the ground truth from its depth sensor into the colour camera (raw Kinect "
        "frames such as 7-Scenes'): 'auto' fits the colour focal length and the offset on each "
        "sequence's own edges; or give them (px, metres; same principal point, no rotation)",
    )
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_geometry_arguments(parser)
    parser.set_defaults(func=eval_command)


def _registration_argument(text: str):
    from videodepth.eval.registration import parse_registration

    try:
        return parse_registration(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--register-depth: ")) from error


def eval_command(args: argparse.Namespace) -> int:
    from videodepth.arguments import geometry_from_args, pipeline_from_args, settings_from_args
    from videodepth.eval.runner import EvalOptions, check_registrable, markdown, run_eval

    geometry = geometry_from_args(args)
    if args.register_depth is not None:
        check_registrable(args.root, args.limit)
    pipeline = pipeline_from_args(args)
    settings = settings_from_args(args, pipeline)
    options = EvalOptions(
        dataset=args.dataset,
        max_res=args.max_res,
        max_frames=args.max_frames,
        limit=args.limit,
        label=args.label,
        geometry=geometry,
        register_depth=args.register_depth,
    )
    summary = run_eval(
        pipeline,
        args.root,
        settings,
        options,
        args.out,
        model_id=str(args.model or "default"),
        progress=not args.no_progress,
    )
    print(markdown(summary))
    print(f"per-video results: {args.out / 'results.csv'}; summary: {args.out / 'summary.md'}")
    return 0


def register_bench(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure speed and memory",
        description="Speed (ms/frame for encode/denoise/decode, frames/s, peak RAM/VRAM) over a grid of "
        "resolutions and lengths, each in a fresh process, on a synthetic video.",
    )
    parser.add_argument(
        "--model",
        default="default",
        help="default (shipped), tiny, small-random, depthcrafter-random, chronodepth-random, "
        "or a model folder",
    )
    parser.add_argument("--sizes", default="256x448", help="comma-separated HEIGHTxWIDTH list")
    parser.add_argument("--lengths", default="32", help="comma-separated frame counts")
    parser.add_argument("--strategy")
    parser.add_argument("--steps", type=positive_int)
    parser.add_argument("--device", default="cpu")
    add_threads_argument(parser)
    parser.add_argument("--save", default="npz,mp4", help="writers to include in the timing")
    parser.add_argument("--csv", type=Path, help="also write the results as CSV")
    parser.add_argument("--geometry", action="store_true", help="also time camera tracking and fusion")
    parser.add_argument(
        "--video",
        type=Path,
        help="benchmark on this clip's first frames instead of a synthetic texture "
        "(geometry needs real parallax)",
    )
    parser.add_argument(
        "--check-memory",
        type=positive_float,
        metavar="RATIO",
        help="fail unless the peak RSS of the longest run is within RATIO of the shortest",
    )
    parser.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from videodepth.eval.bench import markdown_table, parse_size, run_grid, write_csv

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.video is not None and not args.video.exists():
        raise InputError(f"no such video: {args.video}")
    try:
        lengths = sorted(int(n) for n in args.lengths.split(","))
    except ValueError:
        raise InputError("--lengths must be comma-separated integers") from None
    print(markdown_table([]))
    with tempfile.TemporaryDirectory() as work:
        results = run_grid(
            args.model,
            sizes,
            lengths,
            args.strategy,
            args.steps,
            args.device,
            tuple(args.save.split(",")),
            Path(work),
            geometry=args.geometry,
            video=args.video,
            threads=args.threads,
        )
    if args.csv:
        write_csv(results, args.csv)
    if args.check_memory is not None:
        # run_grid measures every length of one size before the next size (sizes may be rounded).
        for first in range(0, len(results), len(lengths)):
            shortest, longest = results[first], results[first + len(lengths) - 1]
            growth = longest.peak_rss_mib / shortest.peak_rss_mib - 1
            print(
                f"peak RSS at {shortest.width}x{shortest.height}: {shortest.frames} frames "
                f"{shortest.peak_rss_mib:.0f} MiB, {longest.frames} frames {longest.peak_rss_mib:.0f} MiB "
                f"({100 * growth:+.1f}%)"
            )
            if growth > args.check_memory:
                return 1
    return 0
