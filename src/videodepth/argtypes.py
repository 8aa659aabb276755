"""Argument types shared by the subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
import math
import re


def frame_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` (e.g. ``256x448``) -> (height, width)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like HEIGHTxWIDTH, e.g. 256x448, got {text!r}"
        ) from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int, *, special: dict[int, str] | None = None):
    """An integer >= ``minimum``; ``special`` values (e.g. ``{-1: "all"}``) are accepted too."""
    special = special or {}

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < minimum and value not in special:
            extra = "".join(f" or {key} ({meaning})" for key, meaning in special.items())
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}{extra}, got {value}")
        return value

    parse.minimum = minimum  # the table test of every option reads it
    return parse


def float_in(minimum: float = -math.inf, maximum: float = math.inf, *, exclusive_min: bool = False):
    """A finite number in [minimum, maximum] ((minimum, maximum] with ``exclusive_min``)."""

    def parse(text: str) -> float:
        value = _number(text, float)
        too_low = value <= minimum if exclusive_min else value < minimum
        if too_low or value > maximum:
            low = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
            bounds = low if maximum == math.inf else f"{low} and <= {maximum:g}"
            if minimum == -math.inf:
                bounds = f"<= {maximum:g}" if maximum != math.inf else "finite"
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {text}")
        return value

    parse.minimum = minimum if minimum != -math.inf else None
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = float_in(0.0, exclusive_min=True)
non_negative_float = float_in(0.0)
finite_float = float_in()


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``; whether it exists is checked before loading."""
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"choose auto, cpu, cuda, cuda:N or mps, got {text!r}")
