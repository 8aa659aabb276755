"""The on-disk observation store: what goes in comes out, in order, and a track survives a save."""

from __future__ import annotations

import numpy as np
import pytest

from videodepth.geometry.observations import MAX_POOLED, ObservationStore, frame_counts, pooling_stride
from videodepth.geometry.tracking import Track


def _frames(counts: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((count, 6), dtype=np.float32) for count in counts]


def test_store_returns_each_frame_in_order_including_empty_ones():
    frames = _frames([5, 0, 3, 1000])
    store = ObservationStore(frames)
    assert len(store) == 4
    assert frame_counts(store).tolist() == [5, 0, 3, 1000]
    for got, expected in zip(store, frames, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(store[-1], frames[-1])
    assert [len(f) for f in store[1:3]] == [0, 3]
    with pytest.raises(IndexError):
        store[4]


def test_a_frame_read_from_the_store_is_a_copy():
    store = ObservationStore(_frames([4]))
    first = store[0]
    first[:] = -1
    assert (store[0] >= 0).all()


def test_store_extends_after_reads():
    frames = _frames([3, 7, 2])
    store = ObservationStore(frames[:1])
    _ = store[0]
    store.extend(frames[1:])
    np.testing.assert_array_equal(store[2], frames[2])
    np.testing.assert_array_equal(store[0], frames[0])


@pytest.mark.parametrize("as_store", [False, True])
def test_track_survives_save_and_load_at_the_exact_path(tmp_path, as_store):
    frames = _frames([10, 0, 4])
    track = Track(
        size=(60, 80),
        K=np.diag([70.0, 70.0, 1.0]),
        c2w=np.repeat(np.eye(4)[None], 3, axis=0),
        observations=ObservationStore(frames) if as_store else frames,
        points=np.ones((2, 6), np.float32),
        note="n",
        image_motion=1.5,
    )
    path = tmp_path / "track.partial"  # not .npz: the atomic writer's temporary name
    track.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["track.partial"]
    loaded = Track.load(path)
    assert isinstance(loaded.observations, ObservationStore)
    assert loaded.size == (60, 80) and loaded.note == "n" and loaded.image_motion == 1.5
    np.testing.assert_array_equal(loaded.c2w, track.c2w)
    for got, expected in zip(loaded.observations, frames, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_pooling_keeps_video_wide_fits_bounded():
    assert pooling_stride(1000) == 1
    assert pooling_stride(MAX_POOLED) == 1
    for total in (MAX_POOLED + 1, 3_000_000, 10_000_000):
        assert total / pooling_stride(total) <= MAX_POOLED


def test_rows_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        ObservationStore([np.zeros((6, 5), np.float32)])
    assert len(ObservationStore([np.zeros((0,), np.float32)])) == 1  # an empty frame is fine


def _save_in_one_array(path, counts: list[int], rows: np.ndarray) -> None:
    """A track file as session 12's Track.save wrote it: one np.savez, all rows in one array."""
    np.savez(
        path,
        size=np.array((4, 4)),
        K=np.eye(3),
        c2w=np.repeat(np.eye(4)[None], len(counts), axis=0),
        counts=np.array(counts),
        observations=rows,
        points=np.zeros((0, 6), np.float32),
        note=np.array(""),
        image_motion=np.array(1.0),
    )


def test_a_track_file_with_observations_of_another_type_is_refused(tmp_path):
    path = tmp_path / "track.npz"
    _save_in_one_array(path, [2], np.zeros((2, 6), np.float64))  # written by something else
    with pytest.raises(ValueError, match="float32"):
        Track.load(path)


def test_a_track_file_written_before_the_store_still_loads(tmp_path):
    frames = _frames([3, 0, 2])
    path = tmp_path / "track.npz"
    _save_in_one_array(path, [3, 0, 2], np.concatenate(frames))
    for got, expected in zip(Track.load(path).observations, frames, strict=True):
        np.testing.assert_array_equal(got, expected)
