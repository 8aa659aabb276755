"""``videodepth bench``: speed and memory measurements."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from videodepth.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure speed and memory",
        description="Speed (ms/frame for encode/denoise/decode, frames/s, peak RAM/VRAM) over a grid of "
                    "resolutions and lengths, each in a fresh process, on a synthetic video.",
    )
    parser.add_argument("--model", default="default",
                        help="default (shipped), tiny, small-random, depthcrafter-random, chronodepth-random, "
                             "or a model folder")
    parser.add_argument("--sizes", default="256x448", help="comma-separated HEIGHTxWIDTH list")
    parser.add_argument("--lengths", default="32", help="comma-separated frame counts")
    parser.add_argument("--strategy")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save", default="npz,mp4", help="writers to include in the timing")
    parser.add_argument("--csv", type=Path, help="also write the results as CSV")
    parser.add_argument("--check-memory", type=float, metavar="RATIO",
                        help="fail unless the peak RSS of the longest run is within RATIO of the shortest")
    parser.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from videodepth.eval.bench import markdown_table, parse_size, run_grid, write_csv

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    try:
        lengths = sorted(int(n) for n in args.lengths.split(","))
    except ValueError:
        raise InputError("--lengths must be comma-separated integers") from None
    print(markdown_table([]))
    with tempfile.TemporaryDirectory() as work:
        results = run_grid(args.model, sizes, lengths, args.strategy, args.steps, args.device,
                           tuple(args.save.split(",")), Path(work))
    if args.csv:
        write_csv(results, args.csv)
    if args.check_memory is not None:
        for size in sizes:
            runs = [r for r in results if (r.height, r.width) == size]
            growth = runs[-1].peak_rss_mib / runs[0].peak_rss_mib - 1
            print(f"peak RSS {runs[0].frames} frames: {runs[0].peak_rss_mib:.0f} MiB, {runs[-1].frames} frames: "
                  f"{runs[-1].peak_rss_mib:.0f} MiB ({100 * growth:+.1f}%)")
            if growth > args.check_memory:
                return 1
    return 0
