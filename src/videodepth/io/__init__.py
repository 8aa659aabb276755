"""Video input (streaming decode, resizing, frame-rate resampling), every output writer, the
depth-file readers and atomic writes."""

from videodepth.io.atomic import PendingDir, PendingFile, atomic_dir, atomic_file, ensure_writable_dir
from videodepth.io.colormap import COLORMAPS, check_colormap, colorize, normalize, percentile_range
from videodepth.io.depthfiles import (
    PNG16_MAX,
    DepthVideo,
    open_depth,
    read_depth_npz,
    read_exr_folder,
    read_npz_fps,
    read_png16,
    read_png16_folder,
)
from videodepth.io.tables import append_csv_row
from videodepth.io.video import VideoInfo, VideoReader, probe, processing_size, resize_rgb
from videodepth.io.writers import (
    WRITER_KINDS,
    ColormapVideoWriter,
    DepthWriter,
    ExrWriter,
    MultiWriter,
    NpzWriter,
    Png16Writer,
    RgbVideoWriter,
    SideBySideVideoWriter,
    fps_fraction,
    make_writers,
    output_path,
)

__all__ = [
    "append_csv_row",
    "COLORMAPS",
    "PNG16_MAX",
    "WRITER_KINDS",
    "ColormapVideoWriter",
    "DepthVideo",
    "DepthWriter",
    "ExrWriter",
    "MultiWriter",
    "NpzWriter",
    "PendingDir",
    "PendingFile",
    "Png16Writer",
    "RgbVideoWriter",
    "SideBySideVideoWriter",
    "VideoInfo",
    "VideoReader",
    "atomic_dir",
    "atomic_file",
    "check_colormap",
    "colorize",
    "ensure_writable_dir",
    "fps_fraction",
    "make_writers",
    "normalize",
    "open_depth",
    "output_path",
    "percentile_range",
    "probe",
    "processing_size",
    "read_depth_npz",
    "read_exr_folder",
    "read_npz_fps",
    "read_png16",
    "read_png16_folder",
    "resize_rgb",
]
