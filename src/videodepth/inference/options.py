"""What a file job is asked to do, and the checks that can be made from a video's header.

Kept free of torch and the models, so that ``videodepth run`` refuses a mistyped path, an
over-long video or an output too large to write before anything heavy is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videodepth.choices import GEOMETRY_KINDS
from videodepth.errors import InputError
from videodepth.io.video import VideoReader

DEFAULT_MAX_FRAMES = 100_000  # about 55 minutes at 30 fps
DEFAULT_MAX_OUTPUT_SIDE = 8192


@dataclass
class InputOptions:
    max_res: int = 448
    target_fps: float | None = None
    process_length: int | None = None
    folder_fps: float = 24.0
    max_frames: int = DEFAULT_MAX_FRAMES  # a guard against runaway jobs, raised with --max-frames


@dataclass
class OutputOptions:
    out_dir: Path = Path("outputs")
    kinds: tuple[str, ...] = ("mp4", "npz")
    cmap: str = "inferno"
    size: str = "original"  # or "processed"
    keep_work: bool = False
    max_side: int = DEFAULT_MAX_OUTPUT_SIDE  # longest side of a written output, raised with --max-output-side
    npz_float16: bool = False  # half the npz size, at 5e-4 precision


def check_geometry_kinds(kinds: tuple[str, ...], geometry: object | None) -> None:
    """Cameras, point clouds and confidence maps exist only with geometry."""
    if geometry is None and (wanted := [k for k in kinds if k in GEOMETRY_KINDS]):
        raise InputError(f"--save {','.join(wanted)} needs --geometry")


def open_reader(video: Path, inputs: InputOptions, multiple: int = 64) -> VideoReader:
    return VideoReader(
        video,
        max_res=inputs.max_res,
        target_fps=inputs.target_fps,
        process_length=inputs.process_length,
        multiple=multiple,
        folder_fps=inputs.folder_fps,
    )


def output_size(reader: VideoReader, outputs: OutputOptions) -> tuple[int, int]:
    """(h, w) of the written depth: the input's, or the processing size."""
    if outputs.size == "original":
        return reader.info.height, reader.info.width
    if outputs.size == "processed":
        return reader.size
    raise InputError(f"unknown output size '{outputs.size}'; use original or processed")


def check_limits(
    reader: VideoReader, inputs: InputOptions, outputs: OutputOptions, num_frames: int | None = None
) -> None:
    """Refuse a job whose frame count or output size is over its limits, from the header."""
    name = reader.info.path
    frames = reader.num_frames if num_frames is None else num_frames
    if frames > inputs.max_frames:
        raise InputError(
            f"{name}: {frames} frames to process, more than the limit of {inputs.max_frames}; "
            "pass --process-length or --target-fps to process fewer, or --max-frames to raise the limit"
        )
    height, width = output_size(reader, outputs)
    if max(height, width) > outputs.max_side:
        raise InputError(
            f"{name}: outputs would be {width}x{height}, more than {outputs.max_side} px on a side; "
            "pass --output-size processed, or --max-output-side to raise the limit"
        )


def check_input(
    video: Path, inputs: InputOptions, outputs: OutputOptions, intrinsics: Sequence[float] | None = None
) -> None:
    """Everything about one input that can be known before the model loads."""
    reader = open_reader(video, inputs)
    check_limits(reader, inputs, outputs)
    check_intrinsics(reader, intrinsics)


def check_intrinsics(reader: VideoReader, intrinsics: Sequence[float] | None) -> None:
    """``--intrinsics`` are in the video's own pixels: a principal point outside the frame means
    they were given for another size (the tracking would then fail and seem to blame the footage)."""
    if intrinsics is None:
        return
    width, height = reader.info.width, reader.info.height
    cx, cy = intrinsics[2], intrinsics[3]
    if not (0 < cx < width and 0 < cy < height):
        raise InputError(
            f"{reader.info.path}: --intrinsics principal point ({cx:g}, {cy:g}) lies outside the "
            f"{width}x{height} video; give fx,fy,cx,cy in this video's own pixels"
        )


def output_stem(video: Path) -> str:
    """The name outputs of one input start with: a file's stem, or an image folder's name."""
    return video.stem if video.is_file() else video.name


def output_names(videos: list[Path]) -> list[str]:
    """A distinct output name per input: its stem, with parent folders prefixed where stems
    collide (``a/clip.mp4``, ``b/clip.mp4`` -> ``a_clip``, ``b_clip``), then a number (the same
    file given twice)."""
    resolved = [video.resolve() for video in videos]
    names = [output_stem(video) for video in videos]
    for depth in range(1, max((len(path.parts) for path in resolved), default=1)):
        paths_by_name: dict[str, set[Path]] = {}
        for name, path in zip(names, resolved, strict=True):
            paths_by_name.setdefault(name, set()).add(path)
        clashing = {name for name, paths in paths_by_name.items() if len(paths) > 1}
        if not clashing:
            break
        names = [
            "_".join([*path.parent.parts[-depth:], output_stem(path)]).lstrip("/_")
            if name in clashing
            else name
            for name, path in zip(names, resolved, strict=True)
        ]
    unique: list[str] = []
    for name in names:
        candidate, number = name, 1
        while candidate in unique:
            number += 1
            candidate = f"{name}_{number}"
        unique.append(candidate)
    return unique
