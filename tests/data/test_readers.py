"""Every benchmark reader on tiny fixtures written byte-for-byte in the original formats."""

from __future__ import annotations

import json
import struct

import av
import cv2
import numpy as np
import pytest

from videodepth.data.readers import (
    detect_format,
    list_sequences,
    read_dpt,
    read_sequence,
    write_rgbd_folder,
)
from videodepth.errors import InputError

RNG = np.random.default_rng(0)
H, W = 6, 8


def _rgb(h=H, w=W):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), values.astype(np.uint16))


def _image(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1])


def _write_dpt(path, depth):
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = depth.shape
    path.write_bytes(struct.pack("<fii", 202021.25, w, h) + depth.astype("<f4").tobytes())


def test_dpt_bytes_and_reader(tmp_path):
    depth = RNG.uniform(0.5, 60, (H, W)).astype(np.float32)
    path = tmp_path / "frame_0001.dpt"
    _write_dpt(path, depth)
    raw = path.read_bytes()
    # float32 202021.25 little-endian is the ASCII tag "PIEH"; then int32 width, int32 height
    assert raw[:4] == b"PIEH" and struct.unpack("<ii", raw[4:12]) == (W, H) and len(raw) == 12 + 4 * H * W
    assert np.array_equal(read_dpt(path), depth)
    path.write_bytes(raw[:-4])
    with pytest.raises(InputError, match="truncated or malformed .dpt"):
        read_dpt(path)
    path.write_bytes(struct.pack("<fii", 1.0, W, H) + depth.tobytes())
    with pytest.raises(InputError, match="not a Sintel .dpt"):
        read_dpt(path)


def test_sintel_layout_with_cameras(tmp_path):
    root = tmp_path / "training"
    depths = [RNG.uniform(1, 50, (H, W)).astype(np.float32) for _ in range(3)]
    for i, depth in enumerate(depths, start=1):
        _image(root / "final" / "alley_1" / f"frame_{i:04d}.png", _rgb())
        _write_dpt(root / "depth" / "alley_1" / f"frame_{i:04d}.dpt", depth)
        K = np.array([[100.0, 0, 4], [0, 100, 3], [0, 0, 1]])
        w2c = np.hstack([np.eye(3), [[i], [0], [0]]])
        cam = root / "camdata_left" / "alley_1" / f"frame_{i:04d}.cam"
        cam.parent.mkdir(parents=True, exist_ok=True)
        cam.write_bytes(
            struct.pack("<f", 202021.25) + K.astype("<f8").tobytes() + w2c.astype("<f8").tobytes()
        )
    assert list_sequences(tmp_path) == [root / "final" / "alley_1"]
    seq = read_sequence(root / "final" / "alley_1")
    assert seq.rgb.shape == (3, H, W, 3) and seq.max_depth == 70.0
    np.testing.assert_allclose(seq.depth, np.stack(depths))
    np.testing.assert_allclose(seq.poses_c2w[1][:3, 3], [-2, 0, 0])  # c2w = inverse of w2c
    assert seq.K[0, 0] == 100.0


def test_scannet_layout(tmp_path):
    scene = tmp_path / "scene0707_00"
    mm = RNG.integers(300, 9000, (2, H, W))
    for i in range(2):
        _image(
            scene / "color" / f"{i}.jpg", _rgb(2 * H, 2 * W)
        )  # colour larger than depth, as in raw exports
        _png16(scene / "depth" / f"{i}.png", mm[i])
        pose = np.eye(4)
        pose[0, 3] = i
        (scene / "pose").mkdir(exist_ok=True)
        np.savetxt(scene / "pose" / f"{i}.txt", pose)
    (scene / "intrinsic").mkdir()
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", np.diag([577.0, 577.0, 1, 1]))
    seq = read_sequence(scene)
    assert detect_format(scene) == "scannet" and seq.rgb.shape == (2, H, W, 3)
    np.testing.assert_allclose(seq.depth, mm / 1000.0, rtol=1e-6)
    assert seq.poses_c2w[1][0, 3] == 1 and seq.K[0, 0] == 577 and seq.max_depth == 10


@pytest.mark.parametrize("name", ["rgbd_dataset_freiburg1_desk", "rgbd_bonn_person_tracking"])
def test_tum_and_bonn_layouts(tmp_path, name):
    seq_dir = tmp_path / name
    raw = RNG.integers(1000, 40000, (3, H, W))
    rgb_lines, depth_lines, gt_lines = ["# rgb"], ["# depth"], ["# ground truth"]
    for i in range(3):
        t = 100.0 + i / 30
        _image(seq_dir / "rgb" / f"{t:.6f}.png", _rgb())
        _png16(seq_dir / "depth" / f"{t + 0.005:.6f}.png", raw[i])
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.005:.6f} depth/{t + 0.005:.6f}.png")
        gt_lines.append(f"{t + 0.001:.4f} {i} 0 0 0 0 0 1")
    (seq_dir / "rgb.txt").write_text("\n".join(rgb_lines))
    (seq_dir / "depth.txt").write_text("\n".join(depth_lines))
    (seq_dir / "groundtruth.txt").write_text("\n".join(gt_lines))
    seq = read_sequence(seq_dir)
    np.testing.assert_allclose(seq.depth, raw / 5000.0, rtol=1e-6)
    assert seq.poses_c2w[2][0, 3] == 2 and np.allclose(seq.poses_c2w[:, :3, :3], np.eye(3))
    assert seq.K[0, 0] == (542.822841 if "bonn" in name else 517.3)
    assert seq.source == ("bonn" if "bonn" in name else "tum")


def test_kitti_layout_sparse(tmp_path):
    seq_dir = tmp_path / "2011_09_26_drive_0005_sync"
    raw = RNG.integers(0, 80 * 256, (2, H, W))
    raw[:, ::2] = 0  # sparse LiDAR: most pixels empty
    for i in range(2):
        name = f"{i + 5:010d}.png"
        _png16(seq_dir / "proj_depth" / "groundtruth" / "image_02" / name, raw[i])
        _image(seq_dir / "image_02" / "data" / name, _rgb())
    (seq_dir / "calib_cam_to_cam.txt").write_text(
        "P_rect_02: 721.5 0 609.5 44.8 0 721.5 172.8 0.2 0 0 1 0.003\n"
    )
    seq = read_sequence(seq_dir)
    np.testing.assert_allclose(seq.depth, raw / 256.0)
    assert not seq.valid[:, ::2].any() and seq.max_depth == 80 and seq.K[0, 0] == pytest.approx(721.5)


def test_nyu_layout_with_eigen_crop(tmp_path):
    folder = tmp_path / "NYUv2" / "test" / "kitchen_0004"
    mm = RNG.integers(500, 9000, (480, 640))
    _image(folder / "rgb_0001.png", _rgb(480, 640))
    _png16(folder / "filled_0001.png", mm)
    paths = list_sequences(tmp_path)
    assert paths == [folder / "rgb_0001.png"]
    seq = read_sequence(paths[0])
    assert seq.rgb.shape == (1, 426, 560, 3)
    np.testing.assert_allclose(seq.depth[0], mm[45:471, 41:601] / 1000.0, rtol=1e-6)
    assert seq.K[0, 2] == pytest.approx(325.5824 - 41)


def test_depthcrafter_extracted_pair(tmp_path):
    folder = tmp_path / "bonn"
    folder.mkdir()
    depth = RNG.uniform(0.5, 9, (4, 1, 16, 16))
    depth[:, :, :2] = -1.0  # DepthCrafter's Bonn/KITTI extraction marks invalid pixels with -1
    np.savez(folder / "rgbd_bonn_crowd2_disparity.npz", disparity=depth)
    with av.open(str(folder / "rgbd_bonn_crowd2_rgb_left.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for _ in range(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_rgb(16, 16), format="rgb24")))
        container.mux(stream.encode())
    assert list_sequences(tmp_path) == [folder / "rgbd_bonn_crowd2_disparity.npz"]
    seq = read_sequence(folder / "rgbd_bonn_crowd2_disparity.npz")
    assert seq.rgb.shape == (4, 16, 16, 3) and seq.max_depth == 10.0 and seq.name == "rgbd_bonn_crowd2"
    assert (seq.depth[:, :2] == 0).all() and np.allclose(seq.depth[:, 2:], depth[:, 0, 2:])
    first = read_sequence(folder / "rgbd_bonn_crowd2_disparity.npz", max_frames=2)
    assert first.rgb.shape == (2, 16, 16, 3) and np.array_equal(first.rgb, seq.rgb[:2])


def test_rgbd_folder_round_trip_matches_shared_layout(tmp_path):
    from videodepth.data.clip import Sequence

    depth = RNG.uniform(0.3, 9.0, (2, H, W)).astype(np.float32)
    depth[0, 0, 0] = 0
    poses = np.repeat(np.eye(4, dtype=np.float32)[None], 2, 0)
    K = np.array([[585.0, 0, 4], [0, 585, 3], [0, 0, 1]], np.float32)
    seq = Sequence("kitchen", np.stack([_rgb(), _rgb()]), depth, K, poses, 10.0)
    path = write_rgbd_folder(seq, tmp_path / "kitchen", image_format="png")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["depth_scale"] == 1000 and meta["max_depth"] == 10.0 and len(meta["poses_c2w"]) == 2
    stored = cv2.imread(str(path / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored[0, 0] == 0 and stored[1, 1] == round(depth[0, 1, 1] * 1000)
    back = read_sequence(path)
    np.testing.assert_allclose(back.depth, np.round(depth * 1000) / 1000, atol=1e-6)
    assert np.array_equal(back.rgb, seq.rgb) and np.array_equal(back.K, K)


def test_frames_beyond_max_frames_are_never_opened(tmp_path):
    """The eval reads a long sequence's first frames only (its protocol length, or one frame for
    the sequence's settings): a file past them is not even opened, here one that is corrupt."""
    from videodepth.data.clip import Sequence

    depth = RNG.uniform(0.3, 9.0, (3, H, W)).astype(np.float32)
    poses = np.repeat(np.eye(4, dtype=np.float32)[None], 3, 0)
    seq = Sequence("room", np.stack([_rgb() for _ in range(3)]), depth, None, poses, 10.0)
    path = write_rgbd_folder(seq, tmp_path / "room", image_format="png")
    (path / "rgb" / "000002.png").write_bytes(b"not an image")
    first = read_sequence(path, max_frames=2)
    assert first.num_frames == 2 and first.poses_c2w.shape == (2, 4, 4)
    assert np.array_equal(first.rgb, seq.rgb[:2])
    with pytest.raises(InputError, match="cannot read image"):
        read_sequence(path)


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(InputError, match="not a sequence in any supported layout"):
        read_sequence(tmp_path / "junk")
    with pytest.raises(InputError, match="not found"):
        list_sequences(tmp_path / "nope")
