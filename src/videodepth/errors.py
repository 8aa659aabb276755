"""User-facing errors.

Anything a user can get wrong (a path, a flag, a file) raises :class:`VideoDepthError` with a
one-line message. The CLI prints that line to stderr and exits non-zero, never a traceback.
"""

from __future__ import annotations


class VideoDepthError(Exception):
    """A problem the user can fix; ``str(error)`` is a single line meant for them."""

    exit_code = 2


class InputError(VideoDepthError):
    """The input video (or image sequence) is missing, unreadable or unsuitable."""


class CheckpointError(VideoDepthError):
    """A model folder or hub id cannot be loaded."""

    exit_code = 3


class OutputError(VideoDepthError):
    """The output location cannot be written."""

    exit_code = 4
