"""videodepth: temporally consistent depth for any RGB video, from video-diffusion priors."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
