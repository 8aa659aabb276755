"""The argument groups that several subcommands share: which model runs where, how it samples,
and whether the footage's own geometry is used; and the objects they describe.

Kept free of torch, so that parsing arguments (and every argument error) takes a fraction of a
second; the model loads only when a command asks for its pipeline.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from videodepth.argtypes import device_name, finite_float, non_negative_float, non_negative_int, positive_int
from videodepth.choices import DTYPE_NAMES, STRATEGIES, SVD_HUB_ID
from videodepth.errors import InputError

if TYPE_CHECKING:
    from videodepth.geometry import GeometryOptions
    from videodepth.inference.pipeline import VideoDepthPipeline
    from videodepth.inference.settings import RunSettings


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model", help="model folder or hub id (default: the small model shipped with videodepth)"
    )
    group.add_argument(
        "--family",
        default="auto",
        choices=["auto", "depthcrafter", "chronodepth"],
        help="family of a published UNet checkpoint (auto: from its name)",
    )
    group.add_argument(
        "--base", default=SVD_HUB_ID, help="SVD img2vid-xt folder or hub id that published UNets plug into"
    )
    group.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:1, mps")
    group.add_argument(
        "--dtype", default="auto", choices=["auto", *DTYPE_NAMES], help="auto: float16 on GPU, float32 on CPU"
    )
    group.add_argument(
        "--cpu-offload",
        action="store_true",
        help="keep models in RAM and move each to the GPU only while it runs",
    )
    add_threads_argument(group)


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--threads``, for every command that runs torch (resolved by ``threads.resolve_threads``)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch and OpenCV (default: the cores idle when the job starts)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (defaults come from the model)")
    group.add_argument("--strategy", choices=STRATEGIES, help="long-video strategy")
    group.add_argument("--steps", type=positive_int, help="denoising steps")
    group.add_argument("--guidance", type=non_negative_float, help="classifier-free guidance scale (1 = off)")
    group.add_argument("--window", type=positive_int, help="frames per window")
    group.add_argument(
        "--overlap", type=non_negative_int, help="depthcrafter: frames shared by consecutive windows"
    )
    group.add_argument(
        "--context", type=non_negative_int, help="chronodepth/replacement/naive: context frames per window"
    )
    group.add_argument(
        "--sigma-epsilon", type=finite_float, help="chronodepth: noise label of the context (c_noise)"
    )
    group.add_argument(
        "--no-noise-init",
        dest="noise_init",
        action="store_false",
        default=None,
        help="depthcrafter ablation: start overlaps from pure noise",
    )
    group.add_argument("--blend", choices=["linear", "average"], help="depthcrafter: how overlaps are merged")
    group.add_argument("--seed", type=non_negative_int, default=42)
    group.add_argument(
        "--noise",
        choices=["frame", "reference"],
        default="frame",
        help="frame: noise keyed by frame index (streams and resumes exactly); "
        "reference: the references' draw order (parity checks)",
    )
    group.add_argument("--decode-chunk-size", type=positive_int, help="frames decoded at once")


def pipeline_from_args(args: argparse.Namespace) -> VideoDepthPipeline:
    """The pipeline that the model arguments describe (see :func:`videodepth.loading.load_pipeline`)."""
    from videodepth.loading import load_pipeline
    from videodepth.threads import resolve_threads

    return load_pipeline(
        args.model,
        args.family,
        args.base,
        args.device,
        args.dtype,
        args.cpu_offload,
        resolve_threads(getattr(args, "threads", None)),
    )


def settings_from_args(args: argparse.Namespace, pipeline: VideoDepthPipeline) -> RunSettings:
    from videodepth.inference.settings import RunSettings

    settings = RunSettings.for_model(
        pipeline.config,
        strategy=args.strategy,
        steps=args.steps,
        guidance=args.guidance,
        window=args.window,
        overlap=args.overlap,
        context=args.context,
        sigma_epsilon=args.sigma_epsilon,
        seed=args.seed,
        noise=args.noise,
        noise_init=args.noise_init,
        blend=args.blend,
        decode_chunk_size=args.decode_chunk_size,
    )
    if warning := pipeline.config.steps_warning(settings.steps):
        print(f"warning: {warning}", file=sys.stderr)
    return settings


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
    group.add_argument(
        "--geometry",
        action="store_true",
        help="track the camera (pycolmap) and fuse its multi-view points with the model's depth",
    )
    group.add_argument(
        "--intrinsics",
        type=parse_intrinsics,
        metavar="FX,FY,CX,CY",
        help="known camera intrinsics in the video's pixels (default: estimated)",
    )


def geometry_from_args(args: argparse.Namespace) -> GeometryOptions | None:
    if args.intrinsics is not None and not args.geometry:
        raise InputError("--intrinsics needs --geometry")
    if not args.geometry:
        return None
    from videodepth.geometry import GeometryOptions, TrackingOptions

    return GeometryOptions(tracking=TrackingOptions(intrinsics=args.intrinsics))
