"""Names the command line offers as choices, in a module that imports nothing heavy.

Parsing arguments (and ``--version``, and every argument error) must not wait for torch,
diffusers and PyAV to import. The modules that implement these names import them from here,
so each list exists once.
"""

from __future__ import annotations

# Long-video strategies (videodepth.inference.strategies).
STRATEGIES: tuple[str, ...] = ("depthcrafter", "chronodepth", "replacement", "naive", "single")

# Depth outputs written by videodepth.io.writers, and those only the geometry gives.
WRITER_KINDS: tuple[str, ...] = ("mp4", "sbs", "npz", "png16", "exr")
GEOMETRY_KINDS: tuple[str, ...] = ("cameras", "ply", "conf")

# Colour maps of depth pictures (videodepth.io.colormap maps them to matplotlib's).
COLORMAPS: tuple[str, ...] = ("inferno", "turbo", "spectral", "gray", "magma", "viridis")

# Compute precisions a user can ask for.
DTYPE_NAMES: tuple[str, ...] = ("float32", "float16", "bfloat16")

# Stable Video Diffusion img2vid-xt, which the published UNets plug into.
SVD_HUB_ID = "stabilityai/stable-video-diffusion-img2vid-xt"
