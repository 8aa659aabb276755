"""``videodepth train CONFIG``: one training stage from a YAML config (see configs/ and docs/TRAINING.md).

On several GPUs: ``accelerate launch --multi_gpu -m videodepth train CONFIG`` (DDP; each process
reads its own batches); several CPU processes: ``torchrun --nproc_per_node 2 -m videodepth train
CONFIG`` (gloo). ``videodepth train-export RUN --out MODEL`` turns a checkpoint into a model folder;
``videodepth train-eval MODEL --synthbench DIR`` scores one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from videodepth.argtypes import frame_size, int_at_least, non_negative_int, positive_int
from videodepth.arguments import add_model_arguments, add_sampling_arguments


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one stage (VAE, DepthCrafter/ChronoDepth/per-frame UNet)",
        description="Train one stage described by a YAML config.",
    )
    train.add_argument("config", type=Path, help="stage config, e.g. configs/depthcrafter/stage1.yaml")
    train.add_argument("--out", type=Path, default=None, help="run folder (default: the config's `out`)")
    train.add_argument(
        "--resume", action="store_true", help="continue from the run folder's latest checkpoint"
    )
    train.add_argument(
        "--steps", type=positive_int, default=None, help="override the number of optimisation steps"
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set optim.lr=3e-5 (repeatable)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to CSV)")
    train.set_defaults(func=_train)

    export = subparsers.add_parser(
        "train-export",
        help="a run's checkpoint as a model folder (EMA weights)",
        description="Write a run's latest checkpoint (or --step N) as a model folder "
        "with its EMA weights, like the model/ a finished run writes.",
    )
    export.add_argument("run", type=Path, help="run folder (holds config.yaml and checkpoints/)")
    export.add_argument("--out", type=Path, required=True, help="model folder to write")
    export.add_argument(
        "--step", type=non_negative_int, default=None, help="checkpoint step (default: the latest)"
    )
    export.set_defaults(func=_export)

    score = subparsers.add_parser(
        "train-eval",
        help="score a model folder on SynthBench clips",
        description="AbsRel, delta1 and TAE of a model folder on SynthBench clips (DepthCrafter protocol).",
    )
    score.add_argument("model", type=Path)
    score.add_argument("--synthbench", type=Path, required=True)
    score.add_argument("--clips", type=positive_int, default=15)
    score.add_argument("--frames", type=positive_int, default=48)
    score.add_argument(
        "--steps", type=positive_int, default=None, help="denoising steps (default: the model's)"
    )
    score.add_argument("--strategy", default=None)
    score.add_argument("--window", type=positive_int, default=None)
    score.add_argument("--overlap", type=non_negative_int, default=None)
    score.add_argument("--context", type=non_negative_int, default=None)
    score.add_argument(
        "--input-size",
        default=None,
        metavar="HxW",
        type=frame_size,
        help="resize frames to this size before inference (default: as stored)",
    )
    score.add_argument(
        "--blank-input",
        action="store_true",
        help="feed uniform grey frames instead of the clips: a model that scores as well on them "
        "as on the real frames has not learned to use the image",
    )
    score.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    score.set_defaults(func=_score)

    label = subparsers.add_parser(
        "train-pseudo-label",
        help="training shards from unlabelled videos, labelled by a teacher model",
        description="Predict depth for videos with a teacher (e.g. a published checkpoint on a GPU) and write "
        "training shards of its relative depth (fine label), one per --frames frames.",
    )
    label.add_argument("videos", nargs="+", type=Path, help="video files or folders of images")
    label.add_argument("--out", required=True, type=Path, help="folder for the shards")
    label.add_argument("--frames", type=positive_int, default=48, help="frames per shard (default 48)")
    label.add_argument(
        "--max-res", type=int_at_least(64), default=None, help="longest side (default: the teacher's max_res)"
    )
    add_model_arguments(label)
    add_sampling_arguments(label)
    label.set_defaults(func=_pseudo_label)


def _train(args) -> int:
    from videodepth.training.config import load_config
    from videodepth.training.trainer import train

    overrides = list(args.overrides) + ([f"steps={args.steps}"] if args.steps is not None else [])
    config = load_config(args.config, overrides)
    folder = train(config, out=args.out, resume=args.resume, show_progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # once, not once per DDP process
        print(f"model written to {folder}")
    return 0


def _export(args) -> int:
    from videodepth.training.trainer import export_checkpoint

    print(f"model written to {export_checkpoint(args.run, args.out, args.step)}")
    return 0


def _score(args) -> int:
    from videodepth.loading import load_model
    from videodepth.training.validate import validate_model

    model = load_model(args.model)
    settings = {
        k: getattr(args, k)
        for k in ("strategy", "window", "overlap", "context")
        if getattr(args, k) is not None
    }
    results = validate_model(
        model,
        args.synthbench,
        args.clips,
        args.frames,
        args.steps or model.config.steps,
        input_size=args.input_size,
        blank_input=args.blank_input,
        device=args.device,
        **settings,
    )
    extra = {"input_size": "x".join(map(str, args.input_size))} if args.input_size else {}
    extra |= {"blank_input": True} if args.blank_input else {}
    print(
        json.dumps(
            {
                "model": str(args.model),
                "clips": args.clips,
                "frames": args.frames,
                **settings,
                **extra,
                **results,
            }
        )
    )
    return 0


def _pseudo_label(args) -> int:
    from videodepth.arguments import pipeline_from_args, settings_from_args
    from videodepth.io.video import probe
    from videodepth.training.pseudo_labels import pseudo_label_video

    for video in args.videos:  # every input is usable before a (possibly large) teacher loads
        probe(video)
    pipeline = pipeline_from_args(args)
    settings = settings_from_args(args, pipeline)
    for video in args.videos:
        paths = pseudo_label_video(
            pipeline,
            video,
            args.out,
            settings,
            args.frames,
            args.max_res,
            teacher=args.model or "the built-in model",
        )
        print(f"{video}: {len(paths)} shards in {args.out}", flush=True)
    return 0
