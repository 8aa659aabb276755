"""The in-memory containers every part of the data engine hands around.

Depth convention (one for the whole package): ``depth`` is metric z-depth in metres along the
camera's optical axis (not ray length); ``0`` marks every pixel without a usable value (sky,
holes, beyond the sensor's range). ``valid`` is exactly ``depth > 0`` unless a reader narrows it.
Cameras follow OpenCV: x right, y down, z forward; poses are camera-to-world 4x4 matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Clip:
    """A rendered (or loaded) video with exact per-frame geometry."""

    rgb: np.ndarray  # uint8 [T, H, W, 3]
    depth: np.ndarray  # float32 [T, H, W], metres, 0 = invalid / sky
    valid: np.ndarray  # bool [T, H, W]
    K: np.ndarray  # float32 [3, 3]
    poses_c2w: np.ndarray  # float32 [T, 4, 4]
    moving_mask: np.ndarray  # bool [T, H, W], pixels showing an independently moving object
    family: str = "custom"
    seed: int = 0
    fps: float = 24.0
    label: str = "fine"
    max_depth: float = 80.0
    K_frames: np.ndarray | None = None  # float32 [T, 3, 3] when the focal length changes (zooms)
    camera_motion: str = ""
    label_params: dict = field(default_factory=dict)  # how a realistic label was degraded
    # float [T, H, W] in [0, 1]: how much each pixel's label is trusted (real-video labels,
    # training.real_labels); None = every valid pixel fully (rendered and RGB-D clips)
    confidence: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def name(self) -> str:
        return f"{self.family}_{self.seed:06d}"


@dataclass
class Sequence:
    """A benchmark-style sequence, whatever format it came from.

    ``rgb`` is a uint8 [T, H, W, 3] array; ``depth`` float32 metres with 0 = invalid;
    ``poses_c2w`` may be None when the source has no poses.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray | None
    poses_c2w: np.ndarray | None
    max_depth: float
    fps: float = 24.0
    source: str = ""
    moving_mask: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        return (self.depth > 1e-3) & (self.depth < self.max_depth)

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    def tae_camera(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(intrinsics, poses) for TAE, or (None, None) when the sequence cannot have one.

        Intrinsics are one 3x3 matrix, or one per frame when the source records them (a zooming
        camera: SynthBench's ``K_frames``), cut to the frames held."""
        if self.K is None or self.poses_c2w is None or self.num_frames < 2:
            return None, None
        per_frame = self.extra.get("K_frames")
        K = self.K if per_frame is None else np.asarray(per_frame, dtype=np.float64)[: self.num_frames]
        return K, self.poses_c2w


def clip_to_sequence(clip: Clip) -> Sequence:
    return Sequence(
        name=clip.name,
        rgb=clip.rgb,
        depth=np.where(clip.valid, clip.depth, 0).astype(np.float32),
        K=clip.K,
        poses_c2w=clip.poses_c2w,
        max_depth=clip.max_depth,
        fps=clip.fps,
        source=f"videodepth synthetic ({clip.label})",
        moving_mask=clip.moving_mask,
        extra={"family": clip.family, "seed": clip.seed, "label": clip.label},
    )


def sequence_to_clip(sequence: Sequence, frames: slice, label: str) -> Clip:
    """Frames of a real (or any) RGB-D sequence as a training clip with the given label.

    Readers may lack intrinsics or poses; training never uses them to compute a loss (they are
    cropped along with the frames), so missing ones become a nominal pinhole (focal length =
    image width) and identity poses, and ``label_params`` says so.
    """
    rgb, depth = sequence.rgb[frames], sequence.depth[frames]
    count, height, width = depth.shape
    notes = {"source": sequence.source or sequence.name}
    K = sequence.K
    if K is None:
        K = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], np.float32)
        notes["intrinsics"] = "assumed"
    poses = sequence.poses_c2w[frames] if sequence.poses_c2w is not None else None
    if poses is None:
        poses = np.repeat(np.eye(4, dtype=np.float32)[None], count, 0)
        notes["poses"] = "assumed"
    per_frame = sequence.extra.get("K_frames")
    moving = sequence.moving_mask[frames] if sequence.moving_mask is not None else np.zeros(depth.shape, bool)
    valid = sequence.valid[frames]
    return Clip(
        rgb=rgb,
        depth=np.where(valid, depth, 0).astype(np.float32),
        valid=valid,
        K=np.asarray(K, np.float32),
        poses_c2w=np.asarray(poses, np.float32),
        moving_mask=moving,
        family=sequence.name,
        seed=frames.start or 0,
        fps=sequence.fps,
        label=label,
        max_depth=sequence.max_depth,
        K_frames=np.asarray(per_frame, np.float32)[frames] if per_frame is not None else None,
        label_params=notes,
    )
