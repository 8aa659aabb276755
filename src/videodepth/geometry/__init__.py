"""Depth from the footage's own geometry: shot cuts, camera tracking (pycolmap), checks before
the geometry is trusted, and fusion of the sparse multi-view points with a learned depth prior.

Dependencies point one way: observations <- tracking <- checks, export; shots, fusion, checks,
tracking <- refine; nothing here imports the inference package, so any model's output can be
refined.
"""

from videodepth.choices import GEOMETRY_KINDS
from videodepth.geometry.checks import CheckThresholds, GeometryChecks, check_track
from videodepth.geometry.export import (
    MAX_CLOUD_POINTS,
    PointCloudBuilder,
    geometry_output_path,
    write_cameras,
)
from videodepth.geometry.fusion import Alignment, FusionOptions, fuse_frame
from videodepth.geometry.refine import (
    GeometryOptions,
    GeometryResult,
    VideoGeometry,
    refine_shots,
    refine_video,
)
from videodepth.geometry.shots import CutOptions, find_shots, per_shot, shot_index
from videodepth.geometry.tracking import Track, TrackingOptions, track_frames

__all__ = [
    "MAX_CLOUD_POINTS",
    "GEOMETRY_KINDS",
    "Alignment",
    "CheckThresholds",
    "CutOptions",
    "FusionOptions",
    "GeometryChecks",
    "GeometryOptions",
    "GeometryResult",
    "PointCloudBuilder",
    "Track",
    "TrackingOptions",
    "VideoGeometry",
    "check_track",
    "find_shots",
    "fuse_frame",
    "geometry_output_path",
    "per_shot",
    "refine_shots",
    "refine_video",
    "shot_index",
    "track_frames",
    "write_cameras",
]
