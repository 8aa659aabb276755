"""Geometry on real footage: 25 frames of a handheld camera circling an office table
(tests/fixtures/dlib_table, dlib's example frames, Boost licence). Every other geometry test uses
renders; this one checks that tracking, the checks and fusion recover real structure from a real
camera, with a deliberately poor prior so that the structure can only come from the footage."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from videodepth.geometry import GeometryOptions
from videodepth.geometry.refine import refine_in_memory

FIXTURE = Path(__file__).parent.parent / "fixtures" / "dlib_table"


@pytest.fixture(scope="module")
def table_clip():
    paths = sorted(FIXTURE.glob("*.jpg"))
    frames = np.stack([cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in paths])
    num, height, width = frames.shape[:3]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    # a near-bottom, far-top layout (what the shipped model gives on real footage) with bumps of
    # +-25%: nothing in it says where the carton is or that the table is flat
    layout = np.linspace(0.5, 1.5, height, dtype=np.float32)[:, None]
    bumps = 1 + 0.25 * np.sin(2 * np.pi * x / 80) * np.sin(2 * np.pi * y / 60)
    prior = np.broadcast_to(layout * bumps, (num, height, width)).copy()
    fused, confidence, result = refine_in_memory(prior, frames, GeometryOptions())
    return frames, prior, fused, result


def _flatness(inverse_depth: np.ndarray, mask: np.ndarray, K: np.ndarray) -> float:
    """RMS distance of the masked pixels, back-projected, from their best plane, over their
    median depth."""
    depth = 1.0 / inverse_depth[mask]
    ys, xs = np.nonzero(mask)
    points = np.stack(
        [(xs + 0.5 - K[0, 2]) / K[0, 0] * depth, (ys + 0.5 - K[1, 2]) / K[1, 1] * depth, depth], axis=1
    )
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return float(np.sqrt(np.mean((centred @ normal) ** 2)) / np.median(depth))


def test_a_real_handheld_clip_is_tracked_and_its_geometry_used(table_clip):
    frames, _, fused, result = table_clip
    assert result.used, result.summary()
    assert result.track.registered.all() and result.frames_used == len(frames)
    assert np.isfinite(fused).all() and fused.min() > 0


def test_the_table_comes_out_flat_and_the_carton_stands_out_from_the_room(table_clip):
    frames, prior, fused, result = table_clip
    height, width = frames.shape[1:3]
    # the front of the table, left of the boxes, in the first frame: its bright pixels
    table = np.zeros((height, width), bool)
    table[165:205, 20:130] = frames[0, 165:205, 20:130, 0] > 120
    K = result.track.K_at((height, width))
    assert table.sum() > 2000
    # measured 0.0093 against the prior's 0.0195 (session 17): a fifth of margin, since tracking
    # differs in its last digits with pycolmap's and libjpeg's versions
    assert _flatness(fused[0], table, K) < min(0.6 * _flatness(prior[0], table, K), 0.015)
    # the juice carton's top and the dark room behind the table, on the same rows: the prior
    # puts them at one depth, the footage puts the carton far nearer
    carton, room = fused[0, 78:95, 85:100], fused[0, 78:95, 250:300]
    assert np.median(prior[0, 78:95, 85:100]) / np.median(prior[0, 78:95, 250:300]) < 1.1
    assert np.median(carton) / np.median(room) > 1.4
