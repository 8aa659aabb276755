"""Command-line entry point: ``videodepth <command> ...``.

Each subsystem owns its subcommands in a ``commands`` module exposing
``register(subparsers)``; this file only assembles them and turns user errors into one line
on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from videodepth import __version__
from videodepth.errors import VideoDepthError

# Subsystems that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES = (
    "videodepth.inference.commands",
    "videodepth.data.commands",
    "videodepth.training.commands",
    "videodepth.eval.commands",
    "videodepth.apps.commands",
)


class OneLineParser(argparse.ArgumentParser):
    """Argument errors are one line (the option, what is allowed) instead of the whole usage."""

    def error(self, message: str):
        missing = re.fullmatch(r"argument (--[\w-]+)(?:/-\w)?: expected one argument", message)
        if missing:
            # argparse reads a value that starts with '-' ("-10,585,320,240") as another option
            message += f" (if it starts with '-', write {missing[1]}=VALUE)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="videodepth",
        description="Temporally consistent depth for any RGB video, from video-diffusion priors.",
    )
    parser.add_argument("--version", action="version", version=f"videodepth {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # subsystem not present in this build
                continue
            raise
        module.register(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Library chatter (deprecation notes, fallback notices) is not for our users.

    Set through the libraries' own environment variables, so that nothing heavy is imported
    here; a user's explicit setting wins."""
    for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "HF_HUB_VERBOSITY"):
        os.environ.setdefault(variable, "error")


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VideoDepthError as error:
        print(f"videodepth: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("videodepth: interrupted; re-run with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
