"""``videodepth fx`` (depth effects over a whole video) and ``videodepth serve`` (the web UI)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from videodepth.argtypes import (
    device_name,
    finite_float,
    float_in,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from videodepth.arguments import add_threads_argument
from videodepth.errors import InputError
from videodepth.io import COLORMAPS


def _color(text: str) -> tuple[float, float, float]:
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected R,G,B numbers, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers R,G,B, got {text!r}")
    return values  # type: ignore[return-value]


def _effect_options(effect: str, parser: argparse.ArgumentParser) -> list[str]:
    """Add the effect's own options; return their destinations (= the effect's field names).

    Numeric defaults are read from the effect's dataclass for the help text, so the two cannot
    drift apart; a help text that explains its default itself is left as it is."""
    from videodepth.apps.fx import EFFECTS

    defaults = {f.name: f.default for f in dataclasses.fields(EFFECTS[effect])}
    group = parser.add_argument_group(f"{effect} options")
    names: list[str] = []

    def add(flag: str, help: str, dest: str | None = None, **kwargs) -> None:
        name = dest or flag.lstrip("-").replace("-", "_")
        default = defaults[name]
        if (
            isinstance(default, int | float | tuple)
            and not isinstance(default, bool)
            and "default" not in help
        ):
            shown = ",".join(f"{v:g}" for v in default) if isinstance(default, tuple) else f"{default:g}"
            help = f"{help} (default {shown})"
        group.add_argument(flag, dest=name, help=help, **kwargs)
        names.append(name)

    def add_depth_range() -> None:  # how fog and point clouds turn disparity in [0, 1] into depth
        add("--near", type=finite_float, help="depth of disparity 1")
        add("--far", type=finite_float, help="depth of disparity 0")

    if effect == "fog":
        add(
            "--density",
            type=non_negative_float,
            help="fog per depth unit: opacity = 1 - exp(-density * depth)",
        )
        add("--color", type=_color, help="fog colour R,G,B in 0-255")
        add_depth_range()
    elif effect == "slice":
        add("--lo", type=finite_float, help="lowest disparity kept")
        add("--hi", type=finite_float, help="highest disparity kept")
        add(
            "--background",
            choices=["transparent", "black"],
            help="what replaces the dropped pixels in PNG frames (videos are always black)",
        )
    elif effect == "matte":
        add("--split", type=finite_float, help="disparity that separates foreground from background")
        add("--softness", type=non_negative_float, help="width of the soft edge in disparity (0 = hard)")
    elif effect == "refocus":
        add("--focus", type=finite_float, help="disparity in focus")
        add(
            "--aperture",
            type=non_negative_float,
            help="blur radius in pixels per unit of disparity from focus",
        )
        add("--max-radius", type=non_negative_int, help="largest blur radius in pixels")
        add("--levels", type=positive_int, help="number of discrete blur radii")
    elif effect == "stereo":
        add(
            "--baseline-px",
            type=finite_float,
            help="parallax in pixels between disparity 0 and 1 (default 3%% of width)",
        )
        add(
            "--mode",
            choices=["sbs", "anaglyph", "left-right"],
            help="sbs: left | right; anaglyph: red-cyan; left-right: two outputs NAME_left, NAME_right",
        )
        add("--convergence", type=finite_float, help="disparity on the screen plane")
    elif effect == "pointcloud":
        add(
            "--fov",
            dest="fov_deg",
            type=float_in(0.0, 179.0, exclusive_min=True),
            help="horizontal field of view in degrees",
        )
        add_depth_range()
        add("--stride", type=positive_int, help="keep every n-th pixel in each direction")
        add("--preview-frame", type=non_negative_int, help="frame shown in preview.png")
    elif effect == "colormap":
        add(
            "--sbs", dest="side_by_side", action="store_true", default=None, help="input | depth side by side"
        )
    else:
        raise AssertionError(effect)
    return names


EFFECT_HELP = {
    "fog": "exponential fog by depth",
    "slice": "keep a disparity range; the rest transparent (PNG) or black",
    "matte": "soft foreground alpha: RGBA PNG frames, or a grayscale alpha .mp4",
    "refocus": "depth-of-field blur around a focus disparity",
    "stereo": "side-by-side or anaglyph stereo by depth-image-based rendering",
    "pointcloud": "per-frame coloured PLY files plus preview.png (input | depth | cloud)",
    "colormap": "colour-mapped depth video (one normalisation for the whole video)",
}


def _add_common(parser: argparse.ArgumentParser) -> None:
    from videodepth.arguments import add_model_arguments, add_sampling_arguments

    parser.add_argument("video", type=Path, help="input video (or folder of images)")
    parser.add_argument(
        "--depth",
        type=Path,
        help="its depth: .npz from `videodepth run`, .npy [T,H,W], or a png16/exr folder "
        "(default: predict it now with the model)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        action="append",
        required=True,
        help="output: NAME.mp4 for a video, a folder name for PNG frames (repeatable)",
    )
    group = parser.add_argument_group("frames and depth")
    group.add_argument(
        "--max-res", type=int_at_least(16), help="cap the longest side of the output (default: original size)"
    )
    group.add_argument(
        "--process-length", type=positive_int, help="use only the first N frames of video and depth"
    )
    group.add_argument(
        "--normalize",
        default="video",
        choices=["video", "none"],
        help="video: one min-max map to [0,1] for the whole video; none: depth is already disparity in [0,1]",
    )
    group.add_argument(
        "--clip-percent",
        type=float_in(0.0, 49.0),
        default=0.0,
        help="with --normalize video: map the P-th and (100-P)-th percentiles to 0 and 1",
    )
    group.add_argument("--cmap", default="inferno", choices=COLORMAPS, help="colour map of depth pictures")
    group.add_argument("--no-progress", action="store_true")
    group.add_argument(
        "--model-max-res", type=int_at_least(64), help="without --depth: the model's processing size"
    )
    add_model_arguments(parser)
    add_sampling_arguments(parser)


def register(subparsers) -> None:
    fx = subparsers.add_parser(
        "fx",
        help="depth effects over a whole video",
        description="Apply a depth effect to every frame of a video, streamed in bounded memory.",
    )
    effects = fx.add_subparsers(dest="effect", metavar="EFFECT", required=True)
    for name, text in EFFECT_HELP.items():
        parser = effects.add_parser(name, help=text, description=text)
        _add_common(parser)
        params = _effect_options(name, parser)
        parser.set_defaults(func=fx_command, effect_params=params)
    _register_serve(subparsers)


def _positive_or_none(value: int | None, name: str) -> int | None:
    if value is not None and value < 1:
        raise InputError(f"{name} must be positive, got {value}")
    return value


def fx_command(args: argparse.Namespace) -> int:
    from videodepth.apps.fx import FxOptions, make_effect, predicted_depth, run_effect

    params = {name: getattr(args, name) for name in args.effect_params}
    if "cmap" in _effect_fields(args.effect):
        params["cmap"] = args.cmap
    effect = make_effect(args.effect, **params)
    options = FxOptions(
        max_res=_positive_or_none(args.max_res, "--max-res"),
        process_length=_positive_or_none(args.process_length, "--process-length"),
        normalization=args.normalize,
        clip_percent=args.clip_percent,
    )
    from videodepth.io import probe

    probe(args.video)  # a missing or unreadable video fails before a model is loaded
    if args.depth is not None:
        report = run_effect(effect, args.video, args.depth, args.out, options, progress=not args.no_progress)
    else:
        from videodepth.arguments import pipeline_from_args, settings_from_args

        pipeline = pipeline_from_args(args)
        settings = settings_from_args(args, pipeline)
        with predicted_depth(
            args.video,
            pipeline,
            settings,
            args.model_max_res,
            options.process_length,
            progress=not args.no_progress,
        ) as npz:
            report = run_effect(effect, args.video, npz, args.out, options, progress=not args.no_progress)
    print(report.summary())
    for note in report.notes:
        print(f"  note: {note}", file=sys.stderr)
    for path in report.outputs:
        print(f"  wrote {path}")
    return 0


def _effect_fields(name: str) -> set[str]:
    import dataclasses

    from videodepth.apps.fx import EFFECTS

    return {f.name for f in dataclasses.fields(EFFECTS[name])}


def _register_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the web UI (Gradio)",
        description="Serve the browser front end: upload a video, get its depth and the effects.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="a local model folder offered next to the shipped model (chosen by the operator)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int_at_least(1), default=7860)
    parser.add_argument("--max-upload-mb", type=positive_float, default=50.0, help="largest upload accepted")
    parser.add_argument("--max-seconds", type=positive_float, default=20.0, help="longest video accepted")
    parser.add_argument(
        "--max-res-limit", type=positive_int, default=1024, help="largest processing size a client may ask"
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=600,
        help="frames one job may process, whatever the client asks",
    )
    parser.add_argument(
        "--max-output-side",
        type=int_at_least(64),
        default=1920,
        help="inputs larger than this get outputs at the processing size",
    )
    parser.add_argument(
        "--max-job-mb",
        type=positive_float,
        default=2048.0,
        help="files one job may write; larger jobs are refused before they start",
    )
    parser.add_argument(
        "--queue-size", type=positive_int, default=16, help="jobs waiting at most; more are refused"
    )
    parser.add_argument(
        "--job-ttl",
        type=positive_float,
        default=3600.0,
        help="seconds a job's files are kept for download (all are removed at shutdown)",
    )
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:1, mps")
    add_threads_argument(parser)
    parser.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    try:
        from videodepth.apps.web import ServeConfig, serve
    except ModuleNotFoundError as error:
        if error.name != "gradio":
            raise
        raise InputError('the web UI needs Gradio: pip install "videodepth[web]"') from None

    config = ServeConfig(
        model=args.model,
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        max_seconds=args.max_seconds,
        max_res_limit=args.max_res_limit,
        queue_size=args.queue_size,
        job_ttl_s=args.job_ttl,
        device=args.device,
        max_frames=args.max_frames,
        max_output_side=args.max_output_side,
        max_job_mb=args.max_job_mb,
        threads=args.threads,
    )
    serve(config)
    return 0
