"""Texture bank: random crops of scikit-image's bundled photographs plus procedural patterns.

Everything here is offline (the photographs ship inside scikit-image). Textures are float32
[S, S, 3] in [0, 1] with S a power of two so lookups can wrap with a bit mask.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

TEXTURE_SIZE = 128
PHOTO_NAMES = (
    "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "coins",
    "moon", "text", "page", "clock", "cat", "immunohistochemistry", "hubble_deep_field", "retina",
    "colorwheel",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def _photographs() -> tuple[np.ndarray, ...]:
    import skimage.data

    photos = []
    for name in PHOTO_NAMES:
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    return tuple(photos)


def _photo_crop(rng: np.random.Generator, size: int) -> np.ndarray:
    photos = _photographs()
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape[:2]
    crop = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    patch = cv2.resize(photo[y : y + crop, x : x + crop], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:  # mirrored copies tile without a visible seam in one direction
        patch = patch[:, ::-1]
    tint = rng.uniform(0.85, 1.15, size=3)
    return np.clip(patch.astype(np.float32) / 255.0 * tint, 0, 1)


def _value_noise(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
    """Tileable fractal noise: sums of wrapped, upsampled random grids."""
    total = np.zeros((size, size), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells, cells)).astype(np.float32)
        tiled = np.tile(grid, (3, 3))
        up = cv2.resize(tiled, (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)[
            size : 2 * size, size : 2 * size
        ]
        total += amplitude * up
        weight += amplitude
        amplitude *= 0.5
    return total / weight


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """Everyday materials are far less saturated than uniform random RGB."""
    value = rng.uniform(0.15, 0.9)
    saturation = rng.uniform(0.05, 0.45)
    return (value * (1 - saturation + saturation * rng.random(3))).astype(np.float32)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = _muted_colour(rng)
    b = np.clip(a * rng.uniform(0.5, 1.5) + rng.uniform(-0.1, 0.1, 3), 0, 1).astype(np.float32)
    return a, b


def _procedural(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b = _two_colours(rng)
    if kind == 0:  # noise
        mix = _value_noise(rng, size)
    elif kind == 1:  # stripes (integer frequency keeps them tileable)
        freq = int(rng.integers(2, 12))
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx if rng.random() < 0.5 else yy))
    elif kind == 2:  # tiles with grout
        n = int(rng.integers(2, 9))
        fx, fy = (xx * n) % 1.0, (yy * n) % 1.0
        grout = (fx < 0.06) | (fy < 0.06)
        mix = np.where(grout, 0.0, 0.7 + 0.3 * _value_noise(rng, size, 2))
    elif kind == 3:  # gradient, mirrored so it wraps
        mix = 1 - np.abs(2 * xx - 1)
    else:  # checker
        n = int(rng.integers(2, 9))
        mix = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
    mix = mix.astype(np.float32)[..., None]
    return (a * mix + b * (1 - mix)).astype(np.float32)


def make_texture(rng: np.random.Generator, size: int = TEXTURE_SIZE, photo_share: float = 0.7) -> np.ndarray:
    """One random texture, a photograph crop with probability ``photo_share``."""
    texture = _photo_crop(rng, size) if rng.random() < photo_share else _procedural(rng, size)
    return np.ascontiguousarray(texture, dtype=np.float32)


def plain_texture(colour: tuple[float, float, float], size: int = 4) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (size, size, 3)).copy()


def sky_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Horizon and zenith colours: blue, hazy or overcast skies."""
    zenith = np.array([0.25, 0.45, 0.85], np.float32) * rng.uniform(0.7, 1.2)
    horizon = np.array([0.75, 0.82, 0.92], np.float32) * rng.uniform(0.8, 1.1)
    if rng.random() < 0.3:  # overcast
        grey = rng.uniform(0.55, 0.85)
        zenith = horizon = np.full(3, grey, np.float32)
    return np.clip(horizon, 0, 1), np.clip(zenith, 0, 1)
