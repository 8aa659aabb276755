"""Fusion of sparse multi-view points with a learned depth prior into dense disparity.

Everything happens in inverse depth (the reconstruction's units). One affine map for the whole
video takes the learned disparity to the points' inverse depth, so scale cannot drift from frame
to frame; each frame then gets a dense correction: the points' log ratios to that mapped prior,
spread by an edge-aware normalised convolution guided by the frame itself (the fast global
smoother, Min et al. 2014, from OpenCV's ximgproc). A ratio, not a difference: a learned depth is
wrong by a factor over a region far more than by an offset, and a factor carries across the
region's own depth range where an offset would not. The correction follows image edges,
so a silhouette bounds it; where few or no points reach (moving objects, sky, textureless walls) a
wide smooth fill takes over and the learned prior keeps its shape, itself first smoothed along
the frame's edges by the same filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from videodepth.geometry.checks import CheckThresholds
from videodepth.geometry.observations import OBS_ANGLE, OBS_DEPTH, OBS_ERROR, OBS_TRACK


@dataclass(frozen=True)
class FusionOptions:
    smoothness: float = 300.0  # fast global smoother's lambda: how far a point's correction reaches
    colour_sigma: float = 12.0  # colour difference (0-255) that stops it at an edge
    neighbours: int = 8  # a point is judged against this many nearest points of its frame
    max_error_px: float = 2.0  # observations reprojecting worse than this are ignored
    # a point triangulated from views this many degrees apart or more counts fully; below, its
    # weight falls with the square of the angle, as the inverse variance of its depth does (a
    # point's relative depth error grows as one over the angle). 4 degrees is the checks' own
    # limit for a video's median angle, and taken from it. Session 17, over 7-Scenes' saved
    # prediction and track: 0.1008 / 0.8962 without, 0.1005 / 0.1002 / 0.0999 / 0.0999 / 0.1015
    # AbsRel at 3 / 4 / 5 / 6 / 10 degrees; on 8 noise-free renders 0.2212 without, 0.2190 with.
    full_weight_angle_deg: float = CheckThresholds.min_triangulation_deg
    outlier_mads: float = 4.0  # per-frame residuals this far from the frame's fit are dropped as moving
    # of the image diagonal: the smooth fill, deciding where the edge-aware one is thin
    fill_sigma: float = 0.25
    # the smooth fill's weight at its densest, as a share of the edge-aware fill's typical density
    # (its 90th percentile): where few points reach a pixel, their correction is shrunk towards
    # the frame's broad one rather than carried alone into a whole region. Measured in session 16
    # (prior_smoothness 300): 7-Scenes (`videodepth eval --geometry`) 0.110 / 0.872 at 0.001,
    # 0.102 / 0.892 at 0.03, 0.100 / 0.897 at 0.1, 0.112 / 0.875 at 1 (both halves of the sequence
    # alike); on 8 noise-free renders whose geometry passed the checks, AbsRel 0.219 / 0.219 /
    # 0.226 (mean) at 0.001 / 0.03 / 0.1. Real footage's stray points (reflections, glossy and
    # textureless surfaces) are what the shrinkage is for; 0.03 takes most of its gain at no cost
    # on clean renders.
    fill_share: float = 0.03
    # the learned prior is first smoothed along the frame's own edges (0: as the model gave it):
    # a model's blocks and blur do not follow the frame's edges, and the correction cannot undo
    # them where no point reaches. Too strong a smoothing flattens real gradients across regions
    # of one colour (a floor, a road, a wall): session 14's 3,000 cost the model's own depth 0.147
    # -> 0.208 AbsRel on SynthBench's 15 clips (0.172 at 1,000, 0.149 at 300), which the geometry
    # never used there, so no benchmark showed it. 300 keeps 7-Scenes' gain (`--geometry` 0.104 ->
    # 0.102 against 0.101 at 3,000; session 16) and leaves SynthBench as it was.
    prior_smoothness: float = 300.0
    # points handed in as ``checked`` (flow points) count only within this log ratio (0.4: a
    # factor of 1.5) of what the tracked points alone give: they refine the depth, they do not
    # overturn it. Session 19: on cotracker_backpack a swinging bag's flow points, on the
    # epipolar lines, made it a bright blob far nearer than the person holding it; with the
    # check it is gone. 7-Scenes 0.0964 -> 0.0963 AbsRel, delta1 0.9085 either way (0.9047 at
    # 0.2); 8 noise-free renders 0.194 -> 0.195 mean AbsRel.
    checked_tolerance: float = 0.4

    def __post_init__(self) -> None:
        if self.full_weight_angle_deg <= 0 or self.max_error_px <= 0 or self.checked_tolerance <= 0:
            raise ValueError("full_weight_angle_deg, max_error_px and checked_tolerance must be positive")


NEAR_PRIOR_LIMIT = 8.0
_MAP_COLUMNS = 4096


@dataclass(frozen=True)
class Alignment:
    """inverse_depth ~ scale * learned + shift, one for the whole video."""

    scale: float
    shift: float
    # plausible inverse depth, from the points' range: the points' corrections never carry a pixel
    # beyond it (a far outlier, an extrapolation); the mapped prior itself may lie nearer than
    # every point (a near object no point reached) and is kept there, up to NEAR_PRIOR_LIMIT times
    # the range (a model's spike or flare would otherwise set the video's normalisation). A
    # correction may still push such a pixel farther, not nearer.
    limits: tuple[float, float] = (0.0, np.inf)

    def clip(self, corrected: np.ndarray, prior: np.ndarray) -> np.ndarray:
        low, high = self.limits
        return np.clip(corrected, low, np.maximum(high, np.minimum(prior, NEAR_PRIOR_LIMIT * high)))

    @property
    def floor(self) -> float:
        """The smallest inverse depth a correction starts from (a positive one)."""
        low, high = self.limits
        return max(low, 1e-6 * high if np.isfinite(high) else 0.0, 1e-12)

    def __call__(self, learned: np.ndarray) -> np.ndarray:
        return self.scale * learned + self.shift


def point_weights(observations: np.ndarray, options: FusionOptions) -> np.ndarray:
    """Confidence of each observation: high for points that reproject well, were seen often and
    were triangulated from views far enough apart."""
    error = observations[:, OBS_ERROR]
    seen = np.minimum(observations[:, OBS_TRACK], 10.0) / 10.0
    parallax = np.minimum(observations[:, OBS_ANGLE] / options.full_weight_angle_deg, 1.0) ** 2
    weight = np.exp(-((error / (0.5 * options.max_error_px)) ** 2)) * (0.3 + 0.7 * seen) * parallax
    return np.where(error <= options.max_error_px, weight, 0.0).astype(np.float32)


def sample_at(image: np.ndarray, observations: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at the observations' normalised (u, v)."""
    height, width = image.shape[:2]
    count = len(observations)
    if count == 0:
        return np.zeros(0, np.float32)
    # OpenCV's maps must be under 32,767 in each dimension: lay the points out in rows
    columns = min(count, _MAP_COLUMNS)
    padded = np.zeros((-(-count // columns) * columns, 2), np.float32)
    padded[:count] = observations[:, :2] * np.array([width, height]) - 0.5
    x, y = (padded[:, k].reshape(-1, columns) for k in (0, 1))
    sampled = cv2.remap(image.astype(np.float32), x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.ravel()[:count]


def fit_alignment(learned: np.ndarray, inverse_depth: np.ndarray, weights: np.ndarray) -> Alignment:
    """Robust weighted least squares (a few Huber reweightings) of the points' inverse depth
    on the learned disparity. A negative slope is not allowed: the prior would then carry the
    wrong depth order into every region the points do not reach, so it degrades to a constant."""
    w = weights.astype(np.float64)
    x, y = learned.astype(np.float64), inverse_depth.astype(np.float64)
    scale, shift = 0.0, float(np.average(y, weights=w)) if w.sum() > 0 else 1.0
    for _ in range(5):
        if w.sum() <= 0:
            break
        design = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(w)[:, None]
        scale, shift = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)[0]
        residual = np.abs(y - scale * x - shift)
        delta = 1.4826 * np.median(residual) + 1e-12
        w = weights * np.minimum(1.0, delta / np.maximum(residual, 1e-12))
    if scale <= 0:
        scale, shift = 0.0, float(np.average(y, weights=weights)) if weights.sum() > 0 else 1.0
    low, high = np.percentile(y, [0.5, 99.5]) if len(y) else (0.0, np.inf)
    return Alignment(float(scale), float(shift), (0.5 * float(low), 2.0 * float(high)))


@dataclass
class FusedFrame:
    inverse_depth: np.ndarray  # [H, W] in the reconstruction's units
    confidence: np.ndarray  # [H, W] in [0, 1]: how much of the result the points decided
    points_used: int
    # dropped before fusion: reprojecting worse than ``max_error_px``, triangulated from one
    # viewpoint (angle 0), or not in front of the camera
    points_inaccurate: int
    points_inconsistent: int  # dropped: far off their neighbours (moving, a reflection, a mistrack)


def fuse_frame(
    learned: np.ndarray,
    rgb: np.ndarray,
    observations: np.ndarray,
    alignment: Alignment,
    options: FusionOptions = FusionOptions(),
    checked: np.ndarray | None = None,
) -> FusedFrame:
    """Dense inverse depth for one frame from its learned disparity, its image and its points.

    ``checked`` are further points that count only where they agree with what ``observations``
    alone give (within ``options.checked_tolerance``, a log ratio): two-view points from optical
    flow, which a person walking along the camera's epipolar lines passes as static scene at a
    wrong depth, where the tracked points have survived a bundle adjustment over many views."""
    guide = np.ascontiguousarray(rgb, dtype=np.uint8)
    prior = alignment(smooth_along_edges(learned, guide, options)).astype(np.float32)
    if checked is not None and len(checked):
        first = _fuse_with_prior(prior, guide, observations, alignment, options)
        seen = sample_at(first.inverse_depth, checked)
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.abs(np.log(seen * checked[:, OBS_DEPTH]))
        observations = np.concatenate([observations, checked[off <= options.checked_tolerance]])
    return _fuse_with_prior(prior, guide, observations, alignment, options)


def _fuse_with_prior(
    prior: np.ndarray,
    guide: np.ndarray,
    observations: np.ndarray,
    alignment: Alignment,
    options: FusionOptions,
) -> FusedFrame:
    """:func:`fuse_frame` from the prior already smoothed and mapped (computed once a frame, though
    a frame with flow points is fused twice)."""
    height, width = prior.shape
    weights = point_weights(observations, options)
    keep = (weights > 0) & (observations[:, OBS_DEPTH] > 0)
    observations, weights = observations[keep], weights[keep]
    if len(observations) == 0:
        return FusedFrame(alignment.clip(prior, prior), np.zeros_like(prior), 0, int((~keep).sum()), 0)
    diagonal = float(np.hypot(height, width))
    # the correction is a factor: the prior must be positive where it is applied
    positive = np.maximum(prior, alignment.floor)
    log_ratio = -np.log(observations[:, OBS_DEPTH]) - np.log(sample_at(positive, observations))
    moving = inconsistent_points(observations, 1.0 / observations[:, OBS_DEPTH], options)
    observations, weights, log_ratio = observations[~moving], weights[~moving], log_ratio[~moving]
    correction, support = _spread(log_ratio, weights, observations, guide, diagonal, options)
    fused = alignment.clip(positive * np.exp(correction), prior)
    return FusedFrame(
        fused.astype(np.float32), support, len(observations), int((~keep).sum()), int(moving.sum())
    )


def smooth_along_edges(learned: np.ndarray, guide: np.ndarray, options: FusionOptions) -> np.ndarray:
    """The learned disparity smoothed within the frame's regions, not across its edges."""
    if options.prior_smoothness <= 0:
        return learned
    return cv2.ximgproc.fastGlobalSmootherFilter(
        guide, learned.astype(np.float32), options.prior_smoothness, options.colour_sigma
    )


def inconsistent_points(
    observations: np.ndarray, inverse_depth: np.ndarray, options: FusionOptions
) -> np.ndarray:
    """Points whose inverse depth is far off the median of their nearest image neighbours (a
    moving object that slipped through, a reflection, a bad track), in units of the frame's
    typical neighbour disagreement."""
    count = len(observations)
    if count <= options.neighbours:
        return np.zeros(count, bool)
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(observations[:, :2]).query(observations[:, :2], k=options.neighbours + 1)
    local = np.median(inverse_depth[nearest[:, 1:]], axis=1)
    deviation = np.abs(np.log(inverse_depth / local))
    mad = 1.4826 * np.median(deviation) + 1e-6
    return deviation > options.outlier_mads * mad


def _spread(
    residual: np.ndarray,
    weights: np.ndarray,
    observations: np.ndarray,
    guide: np.ndarray,
    diagonal: float,
    options: FusionOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense correction and its confidence from sparse residuals (here, log ratios)."""
    height, width = guide.shape[:2]
    x = np.clip((observations[:, 0] * width).astype(np.int64), 0, width - 1)
    y = np.clip((observations[:, 1] * height).astype(np.int64), 0, height - 1)
    splat = np.zeros((height, width, 2), np.float32)
    np.add.at(splat, (y, x, 0), weights * residual)
    np.add.at(splat, (y, x, 1), weights)
    edge_aware = cv2.ximgproc.fastGlobalSmootherFilter(guide, splat, options.smoothness, options.colour_sigma)
    fill_sigma = options.fill_sigma * diagonal
    smooth = cv2.GaussianBlur(splat, (0, 0), fill_sigma, borderType=cv2.BORDER_REFLECT)
    # weights of the two fills on one footing: the smooth one decides where the other is thin
    density = edge_aware[..., 1]
    reference = float(np.percentile(density[density > 0], 90)) if (density > 0).any() else 1.0
    smooth_share = options.fill_share * reference / max(float(smooth[..., 1].max()), 1e-12)
    numerator = edge_aware[..., 0] + smooth_share * smooth[..., 0]
    denominator = density + smooth_share * smooth[..., 1] + 1e-12
    correction = numerator / denominator
    confidence = np.clip(density / (density + 0.1 * reference), 0.0, 1.0)
    return correction.astype(np.float32), confidence.astype(np.float32)
