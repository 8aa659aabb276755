"""Video depth metrics on the published protocols.

Accuracy follows DepthCrafter's public benchmark (``benchmark/eval/eval.py`` and ``metric.py``):

* predictions are disparity; they are clipped at ``MIN_DEPTH`` *before* fitting, as the reference does;
* one least-squares scale and shift per video, in disparity space, over the valid pixels of all frames:
  ``s * pred + t ~ 1 / (gt + 1e-8)``;
* the aligned disparity is clipped at ``MIN_DEPTH``, inverted, and the depth clipped to
  ``[MIN_DEPTH, max_depth]``;
* valid pixels are ``MIN_DEPTH < gt < max_depth``;
* every metric is computed per frame over that frame's valid pixels and then averaged over the frames
  that have at least one valid pixel (frames without any are left out, as the reference drops them).

Temporal consistency follows Video Depth Anything's ``benchmark/eval/eval_tae.py``: the TAE reprojects
each frame's aligned depth into the next frame with the ground-truth relative pose (and back), takes the
AbsRel against the other frame's aligned depth, and reports the mean of both directions over all frame
pairs, multiplied by 100. Ground-truth depth only enters TAE through the scale-and-shift alignment.

Everything is float64 numpy; docs/EVAL_PARITY.md records the agreement with the reference scripts.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from videodepth.errors import InputError

MIN_DEPTH = 1e-3
# Added to the ground truth before inverting it for the fit, as the reference does.
GT_INVERSE_EPS = 1e-8
DELTA_BASE = 1.25

# Per-dataset maximum depth (metres) and number of frames evaluated, from DepthCrafter's eval.sh.
DATASET_MAX_DEPTH: dict[str, float] = {
    "sintel": 70.0,
    "scannet": 10.0,
    "kitti": 80.0,
    "bonn": 10.0,
    "nyu": 10.0,
    # Ours, not from the papers: indoor Kinect captures, same range as ScanNet and Bonn.
    "7scenes": 10.0,
}
DATASET_SEQ_LEN: dict[str, int] = {
    "sintel": 50,
    "scannet": 90,
    "kitti": 110,
    "bonn": 110,
    "nyu": 1,
}

ACCURACY_METRICS = ("abs_rel", "delta1", "delta2", "delta3", "rmse")


def dataset_max_depth(dataset: str) -> float:
    """The maximum evaluation depth of a named dataset (case-insensitive)."""
    key = dataset.lower()
    if key not in DATASET_MAX_DEPTH:
        known = ", ".join(sorted(DATASET_MAX_DEPTH))
        raise InputError(f"unknown dataset '{dataset}' (known: {known}); pass a max depth explicitly")
    return DATASET_MAX_DEPTH[key]


def _as_video(array: np.ndarray, name: str) -> np.ndarray:
    video = np.asarray(array)
    if video.ndim == 2:
        video = video[None]
    if video.ndim != 3:
        raise InputError(f"{name} must have shape [T, H, W] (or [H, W]), got {list(video.shape)}")
    return video


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: tuple(array.shape) for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        described = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
        raise InputError(f"shape mismatch: {described}")


def valid_mask(gt_depth: np.ndarray, max_depth: float) -> np.ndarray:
    """Pixels the protocol evaluates: ``MIN_DEPTH < gt < max_depth`` (NaN counts as invalid)."""
    gt = np.asarray(gt_depth)
    return (gt > MIN_DEPTH) & (gt < max_depth)


def resize_prediction(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of every frame to the ground-truth size, as the reference does before fitting."""
    video = _as_video(pred, "prediction")
    if video.shape[1:] == (height, width):
        return video
    # cv2 has no float16 kernels; float32 and float64 are resized in their own precision like the reference.
    work = video if video.dtype in (np.float32, np.float64) else video.astype(np.float32)
    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR) for frame in work])


def fit_scale_shift(pred_disp: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """One least-squares ``(scale, shift)`` with ``scale * clip(pred) + shift ~ 1 / gt`` over ``valid``."""
    pred = _as_video(pred_disp, "prediction")
    gt = _as_video(gt_depth, "ground truth")
    mask = _as_video(valid, "valid mask").astype(bool)
    _check_same_shape(prediction=pred, ground_truth=gt, valid_mask=mask)
    if not mask.any():
        raise InputError("no valid ground-truth pixels to fit the scale and shift on")
    pred_valid = np.clip(pred[mask].astype(np.float64), MIN_DEPTH, None)
    target = 1.0 / (gt[mask].astype(np.float64) + GT_INVERSE_EPS)
    design = np.stack([pred_valid, np.ones_like(pred_valid)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(scale), float(shift)


def apply_scale_shift(pred_disp: np.ndarray, scale: float, shift: float, max_depth: float) -> np.ndarray:
    """Aligned depth: clip the disparity, apply the fit, clip again, invert, clip to the depth range."""
    pred = np.clip(_as_video(pred_disp, "prediction").astype(np.float64), MIN_DEPTH, None)
    aligned_disp = np.clip(scale * pred + shift, MIN_DEPTH, None)
    return np.clip(1.0 / aligned_disp, MIN_DEPTH, max_depth)


def align_video(
    pred_disp: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, max_depth: float
) -> np.ndarray:
    """Depth aligned to the ground truth with one scale and shift for the whole video."""
    scale, shift = fit_scale_shift(pred_disp, gt_depth, valid)
    return apply_scale_shift(pred_disp, scale, shift, max_depth)


def _frame_means(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each frame's valid pixels; NaN for frames without any."""
    sums = np.where(valid, values, 0.0).sum(axis=(-1, -2))
    counts = valid.sum(axis=(-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _prepare(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray):
    pred = _as_video(pred_depth, "prediction").astype(np.float64)
    gt = _as_video(gt_depth, "ground truth").astype(np.float64)
    mask = _as_video(valid, "valid mask").astype(bool)
    _check_same_shape(prediction=pred, ground_truth=gt, valid_mask=mask)
    # Invalid pixels never reach a result; a harmless value keeps the arithmetic warning-free.
    return np.where(mask, pred, 1.0), np.where(mask, gt, 1.0), mask


def _abs_rel_frames(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _frame_means(np.abs(pred - gt) / gt, mask)


def _delta_frames(ratio: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    return _frame_means(ratio < DELTA_BASE**k, mask)


def _rmse_frames(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.sqrt(_frame_means((pred - gt) ** 2, mask))


def abs_rel_per_frame(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-frame mean of ``|pred - gt| / gt`` over valid pixels, shape [T]."""
    return _abs_rel_frames(*_prepare(pred_depth, gt_depth, valid))


def delta_per_frame(
    pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, k: int = 1
) -> np.ndarray:
    """Per-frame share of valid pixels with ``max(pred/gt, gt/pred) < 1.25**k``, shape [T]."""
    pred, gt, mask = _prepare(pred_depth, gt_depth, valid)
    return _delta_frames(np.maximum(pred / gt, gt / pred), mask, k)


def rmse_per_frame(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-frame root mean squared error over valid pixels, shape [T]."""
    return _rmse_frames(*_prepare(pred_depth, gt_depth, valid))


def _mean_over_valid_frames(per_frame: np.ndarray) -> float:
    finite = per_frame[~np.isnan(per_frame)]
    if finite.size == 0:
        raise InputError("no frame has a valid ground-truth pixel")
    return float(finite.mean())


def abs_rel(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """AbsRel: per-frame mean over valid pixels, averaged over frames with valid pixels."""
    return _mean_over_valid_frames(abs_rel_per_frame(pred_depth, gt_depth, valid))


def delta(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, k: int = 1) -> float:
    """delta_k accuracy (k = 1, 2, 3), per frame then averaged over frames with valid pixels."""
    if k not in (1, 2, 3):
        raise InputError(f"delta threshold exponent must be 1, 2 or 3, got {k}")
    return _mean_over_valid_frames(delta_per_frame(pred_depth, gt_depth, valid, k))


def rmse(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """RMSE: per-frame root mean square over valid pixels, averaged over frames with valid pixels."""
    return _mean_over_valid_frames(rmse_per_frame(pred_depth, gt_depth, valid))


def per_frame_metrics(
    pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray
) -> dict[str, np.ndarray]:
    """Every accuracy metric per frame (NaN where a frame has no valid pixel), for curves and tables."""
    pred, gt, mask = _prepare(pred_depth, gt_depth, valid)
    ratio = np.maximum(pred / gt, gt / pred)
    return {
        "abs_rel": _abs_rel_frames(pred, gt, mask),
        "delta1": _delta_frames(ratio, mask, 1),
        "delta2": _delta_frames(ratio, mask, 2),
        "delta3": _delta_frames(ratio, mask, 3),
        "rmse": _rmse_frames(pred, gt, mask),
    }


def _intrinsics_per_frame(K: np.ndarray, num_frames: int) -> np.ndarray:
    intrinsics = np.asarray(K, dtype=np.float64)
    if intrinsics.shape == (3, 3):
        return np.broadcast_to(intrinsics, (num_frames, 3, 3))
    if intrinsics.shape == (num_frames, 3, 3):
        return intrinsics
    raise InputError(
        f"intrinsics must have shape [3, 3] or [{num_frames}, 3, 3], got {list(intrinsics.shape)}"
    )


def poses_w2c_to_c2w(poses_w2c: np.ndarray) -> np.ndarray:
    """Camera-to-world poses from world-to-camera ones (TAE expects camera-to-world)."""
    return np.linalg.inv(np.asarray(poses_w2c, dtype=np.float64))


def _reprojection_abs_rel(
    depth_src: np.ndarray,
    depth_dst: np.ndarray,
    src_to_dst: np.ndarray,
    K: np.ndarray,
    mask_dst: np.ndarray,
) -> float:
    """AbsRel of ``depth_dst`` against ``depth_src`` splatted into the destination camera.

    Points go to the nearest pixel (round half to even); where several land on one pixel the last in
    row-major order wins, as in the reference on CPU. Returns 0 when nothing lands, like the reference.
    """
    height, width = depth_src.shape
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack(
        [((cols - cx) * depth_src / fx).ravel(), ((rows - cy) * depth_src / fy).ravel(), depth_src.ravel()],
        axis=1,
    )
    moved = points @ src_to_dst[:3, :3].T + src_to_dst[:3, 3]
    x_moved, y_moved, z_moved = moved[:, 0], moved[:, 1], moved[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round((x_moved * fx) / z_moved + cx)
        v = np.round((y_moved * fy) / z_moved + cy)
    lands = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    if not lands.any():
        return 0.0
    projected = np.zeros((height, width), dtype=np.float64)
    projected[v[lands].astype(np.int64), u[lands].astype(np.int64)] = z_moved[lands]
    compared = (projected > 0) & (depth_dst > 0) & mask_dst
    if not compared.any():
        return 0.0
    target = depth_dst[compared]
    return float(np.mean(np.abs(target - projected[compared]) / target))


def tae(
    aligned_depth: np.ndarray,
    K: np.ndarray,
    poses_c2w: np.ndarray,
    masks: np.ndarray | None = None,
) -> float:
    """Temporal alignment error (x100) of an aligned depth video, as Video Depth Anything computes it.

    For each pair (t, t+1): frame t's depth is reprojected into frame t+1 with
    ``inv(pose[t+1]) @ pose[t]`` and compared with frame t+1's depth (restricted to ``masks[t+1]``), and
    the other way round with the inverse transform (restricted to ``masks[t]``); both use frame t's
    intrinsics. The result is the mean over the 2 (T - 1) AbsRel values, times 100.

    ``poses_c2w`` are camera-to-world 4x4 matrices (convert with :func:`poses_w2c_to_c2w`); ``K`` is one
    3x3 matrix or one per frame; ``masks`` (bool [T, H, W]) defaults to all pixels, as in the reference.
    """
    depth = _as_video(aligned_depth, "aligned depth").astype(np.float64)
    num_frames = depth.shape[0]
    if num_frames < 2:
        raise InputError("TAE needs at least 2 frames")
    poses = np.asarray(poses_c2w, dtype=np.float64)
    if poses.shape != (num_frames, 4, 4):
        raise InputError(f"poses must have shape [{num_frames}, 4, 4], got {list(poses.shape)}")
    intrinsics = _intrinsics_per_frame(K, num_frames)
    regions = np.ones(depth.shape, dtype=bool) if masks is None else _as_video(masks, "masks").astype(bool)
    _check_same_shape(aligned_depth=depth, masks=regions)

    total = 0.0
    for t in range(num_frames - 1):
        forward = np.linalg.inv(poses[t + 1]) @ poses[t]
        total += _reprojection_abs_rel(depth[t], depth[t + 1], forward, intrinsics[t], regions[t + 1])
        backward = np.linalg.inv(forward)
        total += _reprojection_abs_rel(depth[t + 1], depth[t], backward, intrinsics[t], regions[t])
    return total / (2 * (num_frames - 1)) * 100.0


def tae_video(
    pred_disp: np.ndarray,
    gt_depth: np.ndarray,
    K: np.ndarray,
    poses_c2w: np.ndarray,
    max_depth: float,
    valid: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> float:
    """TAE of a raw disparity prediction: align to the ground truth (one scale/shift), then :func:`tae`."""
    mask = valid_mask(gt_depth, max_depth) if valid is None else np.asarray(valid, dtype=bool)
    return tae(align_video(pred_disp, gt_depth, mask, max_depth), K, poses_c2w, masks)


def evaluate_video(
    pred_disp: np.ndarray,
    gt_depth: np.ndarray,
    max_depth: float,
    valid: np.ndarray | None = None,
    seq_len: int | None = None,
    K: np.ndarray | None = None,
    poses_c2w: np.ndarray | None = None,
) -> dict[str, float]:
    """All accuracy metrics of one video on the DepthCrafter protocol, plus TAE when poses are given.

    ``pred_disp`` is resized to the ground-truth size if needed; only the first ``seq_len`` frames are
    evaluated (cut before fitting, as the reference does; fewer if the prediction is shorter). An
    explicit ``valid`` mask is combined with the depth-range mask. Returns abs_rel, delta1..3, rmse,
    scale, shift, frames (frames with valid pixels) and, with ``K`` and ``poses_c2w``, tae computed on
    the same aligned clip (Video Depth Anything's script picks its own frame range; see :func:`tae_video`).
    """
    if (K is None) != (poses_c2w is None):
        raise InputError("TAE needs both intrinsics and poses")
    gt = _as_video(gt_depth, "ground truth")
    pred = resize_prediction(pred_disp, gt.shape[1], gt.shape[2])
    mask = valid_mask(gt, max_depth)
    if valid is not None:
        extra = _as_video(valid, "valid mask").astype(bool)
        _check_same_shape(ground_truth=gt, valid_mask=extra)
        mask &= extra
    # Like the reference, a prediction shorter than seq_len shortens the evaluated clip.
    count = pred.shape[0] if seq_len is None else min(seq_len, pred.shape[0])
    if gt.shape[0] < count or (seq_len is None and gt.shape[0] != count):
        raise InputError(f"prediction has {pred.shape[0]} frames but ground truth has {gt.shape[0]}")
    pred, gt, mask = pred[:count], gt[:count], mask[:count]
    if poses_c2w is not None:
        poses_c2w = np.asarray(poses_c2w)[:count]
        K = np.asarray(K)[:count] if np.ndim(K) == 3 else K

    scale, shift = fit_scale_shift(pred, gt, mask)
    depth = apply_scale_shift(pred, scale, shift, max_depth)
    curves = per_frame_metrics(depth, gt, mask)
    results = {name: _mean_over_valid_frames(values) for name, values in curves.items()}
    results.update(scale=scale, shift=shift, frames=int((mask.sum(axis=(-1, -2)) > 0).sum()))
    if poses_c2w is not None:
        results["tae"] = tae(depth, K, poses_c2w)
    return results


def row_variance_share(depth: np.ndarray) -> float:
    """Median over frames of the share of a frame's variance that its row position alone explains
    (the variance of the row means over the variance of the frame), for ``depth`` [T, H, W].

    A near-bottom / far-top layout scores close to 1 whatever the image shows; depth of real
    scenes, whose objects cut across rows, scores lower. Frames without variance are skipped."""
    depth = _as_video(np.asarray(depth, dtype=np.float64), "depth")
    total = depth.var(axis=(1, 2))
    rows = depth.mean(axis=2, keepdims=True)
    explained = ((rows - depth.mean(axis=(1, 2), keepdims=True)) ** 2).mean(axis=(1, 2))
    shares = explained[total > 0] / total[total > 0]
    return float(np.median(shares)) if len(shares) else math.nan
