"""``videodepth data ...``: render clips and shards, SynthBench, contact sheet, throughput."""

from __future__ import annotations

from pathlib import Path

from videodepth.argtypes import (
    device_name,
    float_in,
    frame_size,
    int_at_least,
    non_negative_int,
    positive_int,
)
from videodepth.errors import InputError


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="synthetic data, benchmarks and dataset tools")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    render = sub.add_parser("render", help="render training shards (one .npz per clip)")
    render.add_argument("--out", required=True, type=Path, help="folder for the shards")
    render.add_argument("--clips", type=positive_int, default=10)
    render.add_argument("--frames", type=positive_int, default=50)
    render.add_argument("--size", type=frame_size, default=(320, 640), help="HxW, default 320x640")
    render.add_argument("--families", default="all", help="comma-separated, or 'all'")
    render.add_argument("--label", choices=("fine", "realistic"), default="fine")
    render.add_argument("--seed", type=non_negative_int, default=0, help="base seed (training split)")
    render.add_argument("--look-up", type=float_in(0.0, 1.0), default=0.0, metavar="P",
                        help="probability that a clip's camera pitches up 10-50 degrees (default 0)")  # fmt: skip
    render.set_defaults(func=_render)

    bench = sub.add_parser("synthbench", help="generate the SynthBench benchmark (45 clips, RGB-D folders)")
    bench.add_argument("--out", required=True, type=Path)
    bench.add_argument("--size", type=frame_size, default=(256, 448), help="HxW, default 256x448")
    bench.add_argument("--workers", type=positive_int, default=1)
    bench.add_argument(
        "--max-frames", type=positive_int, default=None, help="cap clip length (quick looks only)"
    )
    bench.add_argument(
        "--clips-per-family",
        type=positive_int,
        default=9,
        help="the first N clips of each family (default all 9)",
    )
    bench.add_argument(
        "--clean",
        action="store_true",
        help="render without the simulated camera (blur, noise, compression): the same scenes and depth",
    )
    bench.set_defaults(func=_synthbench)

    sheet = sub.add_parser("contact-sheet", help="PNG grid of RGB and depth for one clip per family")
    sheet.add_argument("--out", required=True, type=Path)
    sheet.add_argument("--seed", type=non_negative_int, default=0)
    sheet.add_argument("--frames", type=positive_int, default=24)
    sheet.add_argument("--label", choices=("fine", "realistic"), default="fine")
    sheet.add_argument("--clips-per-family", type=positive_int, default=1)
    sheet.add_argument("--from", dest="source", type=Path, default=None,
                       help="show sequences from this folder (any supported layout) instead of rendering")  # fmt: skip
    sheet.set_defaults(func=_contact_sheet)

    speed = sub.add_parser("bench", help="measure rendering and loader throughput (frames/s)")
    speed.add_argument("--size", type=frame_size, default=(320, 640))
    speed.add_argument("--clip-len", type=positive_int, default=24)
    speed.add_argument("--items", type=positive_int, default=10)
    speed.add_argument("--workers", type=positive_int, default=2)
    speed.set_defaults(func=_bench)

    convert = sub.add_parser("convert", help="convert benchmark sequences to the RGB-D folder layout")
    convert.add_argument(
        "source", type=Path, help="a sequence or a folder of sequences (any supported layout)"
    )
    convert.add_argument("--out", required=True, type=Path)
    convert.add_argument("--max-frames", type=positive_int, default=None)
    convert.add_argument("--kitti-raw-root", type=Path, default=None)
    convert.set_defaults(func=_convert)

    shards = sub.add_parser("shards", help="turn RGB-D sequences (any supported layout) into training shards")
    shards.add_argument(
        "source", type=Path, help="a sequence or a folder of sequences (any supported layout)"
    )
    shards.add_argument("--out", required=True, type=Path, help="folder for the shards")
    shards.add_argument(
        "--label",
        choices=("fine", "realistic"),
        required=True,
        help="fine: exact depth (holes are sky); realistic: sensor or stereo depth with holes",
    )
    shards.add_argument("--frames", type=positive_int, default=48, help="frames per shard (default 48)")
    shards.add_argument(
        "--max-frames", type=positive_int, default=None, help="read at most this many frames per sequence"
    )
    shards.add_argument("--kitti-raw-root", type=Path, default=None)
    shards.set_defaults(func=_shards)

    label = sub.add_parser(
        "label", help="label real video with depth from its own geometry (or stereo) as training shards"
    )
    label.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="VIDEO_OR_FOLDER",
        help="video files, image folders, stereo folders (rgb/ and right/), or folders of these",
    )
    label.add_argument("--out", required=True, type=Path, help="folder for the shards (one .npz per clip)")
    label.add_argument(
        "--model", default=None, help="the depth prior fused with the geometry (default: the shipped model)"
    )
    label.add_argument(
        "--max-res",
        type=int_at_least(64),
        default=448,
        help="longer side of the processing size (default 448)",
    )
    label.add_argument(
        "--frames", type=positive_int, default=120, help="at most this many frames per clip (default 120)"
    )
    label.add_argument(
        "--min-confidence",
        type=float_in(0.0, 1.0),
        default=0.0,
        metavar="C",
        help="pixels whose confidence is below C get no label (default 0)",
    )
    label.add_argument(
        "--fill-weight",
        type=float_in(0.0, 1.0),
        default=0.2,
        metavar="W",
        help="confidence of the densified fill where the prior decided (default 0.2)",
    )
    label.add_argument(
        "--min-rank-agreement",
        type=float_in(-1.0, 1.0),
        default=0.0,
        metavar="R",
        help="the prior's depth order must agree with the reconstruction's at least this much (median "
        "per-frame Spearman; default 0). It catches inverted reconstructions, but a weak prior also "
        "contradicts good ones: -1 turns the check off; look at such labels before training on them",
    )
    label.add_argument(
        "--report",
        type=Path,
        default=None,
        help="CSV report (default <out>/label_report.csv; label_report.rank<r>.csv per rank)",
    )
    label.add_argument(
        "--exclude", type=_names, default=(), metavar="NAME,...", help="clip names to hold out"
    )
    label.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    label.set_defaults(func=_label)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _families(text: str) -> tuple[str, ...]:
    from videodepth.synth.scenes import FAMILIES

    if text == "all":
        return FAMILIES
    chosen = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise InputError(f"unknown scene families: {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    return chosen


def _render(args) -> int:
    from videodepth.data.shards import write_shard
    from videodepth.synth.render import render_clip
    from videodepth.synth.scenes import SceneConfig
    from videodepth.synth.synthbench import training_seed

    families = _families(args.families)
    for i in range(args.clips):
        family = families[i % len(families)]
        seed = training_seed(args.seed, 0, i)
        clip = render_clip(
            SceneConfig(family, look_up=args.look_up), seed, args.frames, *args.size, label=args.label
        )
        path = write_shard(clip, args.out / f"{family}_{seed:010d}_{args.label}.npz")
        print(f"{path} ({clip.num_frames} frames, {clip.camera_motion})")
    return 0


def _synthbench(args) -> int:
    from videodepth.synth.synthbench import generate_synthbench

    paths = generate_synthbench(args.out, *args.size, workers=args.workers, max_frames=args.max_frames,
                                clips_per_family=args.clips_per_family, clean=args.clean,
                                progress=lambda name: print(f"done {name}", flush=True))  # fmt: skip
    print(f"SynthBench: {len(paths)} sequences in {args.out}")
    return 0


def _contact_sheet(args) -> int:
    import numpy as np

    from videodepth.data.preview import contact_sheet, save_png
    from videodepth.data.readers import list_sequences, read_sequence
    from videodepth.synth.render import render_clip
    from videodepth.synth.scenes import FAMILIES

    rows = []
    if args.source is not None:
        for path in list_sequences(args.source)[: 5 * args.clips_per_family]:
            seq = read_sequence(path)
            rows.append((seq.rgb, seq.depth, seq.valid))
    else:
        for family in FAMILIES:
            for k in range(args.clips_per_family):
                clip = render_clip(family, args.seed + k, args.frames, 256, 448, label=args.label)
                rows.append((clip.rgb, np.where(clip.valid, clip.depth, 0), clip.valid))
    if not rows:
        raise InputError(f"no sequences found in {args.source}")
    path = save_png(contact_sheet(rows, thumb=(90, 160)), args.out)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


def _bench(args) -> int:
    from videodepth.synth.bench import run_benchmark

    run_benchmark(*args.size, clip_len=args.clip_len, items=args.items, workers=args.workers)
    return 0


def _convert(args) -> int:
    from videodepth.data.readers import list_sequences, read_sequence, write_rgbd_folder

    options = {"kitti_raw_root": args.kitti_raw_root} if args.kitti_raw_root else {}
    paths = list_sequences(args.source)
    if not paths:
        raise InputError(f"no sequences in a supported layout under {args.source}")
    for path in paths:
        sequence = read_sequence(path, args.max_frames, **options)
        target = write_rgbd_folder(sequence, args.out / sequence.name, image_format="jpg")
        print(f"{target} ({sequence.num_frames} frames)")
    return 0


def _shards(args) -> int:
    from videodepth.data.clip import sequence_to_clip
    from videodepth.data.readers import list_sequences, read_sequence
    from videodepth.data.shards import write_shard

    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    options = {"kitti_raw_root": args.kitti_raw_root} if args.kitti_raw_root else {}
    paths = list_sequences(args.source)
    if not paths:
        raise InputError(f"no sequences in a supported layout under {args.source}")
    written = 0
    for path in paths:
        sequence = read_sequence(path, args.max_frames, **options)
        for start in range(0, sequence.num_frames, args.frames):
            clip = sequence_to_clip(sequence, slice(start, start + args.frames), args.label)
            write_shard(clip, args.out / f"{sequence.name}_{start:06d}_{args.label}.npz")
            written += 1
        print(
            f"{path}: {sequence.num_frames} frames -> {-(-sequence.num_frames // args.frames)} shards",
            flush=True,
        )
    print(f"{written} shards in {args.out}")
    return 0


def _label(args) -> int:
    from videodepth.training.real_labels import (
        LabelOptions,
        label_clips,
        label_geometry_options,
        rank_and_world,
    )

    rank, world = rank_and_world()  # a bad RANK / WORLD_SIZE is one line, before anything loads
    options = LabelOptions(
        max_res=args.max_res,
        frames=args.frames,
        min_confidence=args.min_confidence,
        fill_weight=args.fill_weight,
        geometry=label_geometry_options(args.min_rank_agreement),
    )
    summary = label_clips(
        args.inputs,
        args.out,
        options,
        model=args.model,
        report=args.report,
        exclude=args.exclude,
        device=args.device,
        rank=rank,
        world=world,
    )
    print(summary.describe(), flush=True)
    return 0
