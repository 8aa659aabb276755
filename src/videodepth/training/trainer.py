"""The training loop: accelerate (one CPU process, or DDP over GPUs), gradient accumulation,
mixed precision on GPU, EMA weights, periodic checkpoints with exact resume, CSV/TensorBoard
logs, a progress bar, and validation on SynthBench clips.

Exact resume: data and noise of step s are drawn from generators keyed by (seed, s, micro-step,
rank) (see :mod:`videodepth.data.dataset`), and a checkpoint holds the trained module,
optimizer, EMA weights and the step. Nothing else carries state across steps, so N steps at
once and N/2 + resume + N/2 give identical parameters.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from videodepth.data.dataset import StepBatchSampler, StepKeyedShards, step_loader
from videodepth.diffusion.noise import GeneratorNoise
from videodepth.errors import CheckpointError, InputError
from videodepth.inference.runner import peak_rss_mib
from videodepth.io import atomic_dir
from videodepth.models.bundle import DepthModel, is_hub_id
from videodepth.models.denoiser import Denoiser
from videodepth.training.config import TrainConfig, load_config
from videodepth.training.layers import select_trainable
from videodepth.training.objective import draw_sigmas, encode_scaled, latent_cell_weights

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
MODEL_FOLDER = "model"
KEEP_CHECKPOINTS = 2


class VaeReconstruction(torch.nn.Module):
    """Encode, sample, decode in one forward (so DDP sees one call); returns (recon, kl)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None):
        posterior = self.vae.encode(images).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
        z = posterior.mean + posterior.std * noise
        return self.vae.decode(z).sample, posterior.kl().mean()


def initial_model(config: TrainConfig) -> DepthModel:
    model = _loaded_or_fresh(config)
    channels, widths = config.model.detail_channels, tuple(config.model.detail_widths)
    if not channels:
        return model
    from videodepth.models.detail_encoder import DEFAULT_WIDTHS, add_detail_encoder, widen_detail_encoder

    if model.detail_encoder is None:
        add_detail_encoder(model, channels, seed=config.model.seed, widths=widths or DEFAULT_WIDTHS)
        return model
    current = model.detail_encoder.config
    widths = widths or tuple(current.widths)
    if (channels, widths) != (current.out_channels, tuple(current.widths)):
        try:
            widen_detail_encoder(model, channels, widths, seed=config.model.seed)
        except ValueError as error:
            raise InputError(f"model.detail_channels / detail_widths: {error}") from None
    return model


def _loaded_or_fresh(config: TrainConfig) -> DepthModel:
    section = config.model
    if section.init in ("random", "designed"):
        from videodepth.models.architectures import random_model

        model = random_model("videodepth", size=section.size, seed=section.seed)
        if section.init == "designed":
            from videodepth.training.designed_vae import design_vae

            settings = dataclasses.replace(model.config, vae_decoder_padding="replicate")
            model = dataclasses.replace(model, vae=design_vae(), config=settings)
        return model
    if section.init == "svd":
        return DepthModel.from_svd(section.base, section.family)
    folder = Path(section.init)
    if not folder.is_dir() and (folder.exists() or not is_hub_id(section.init)):
        raise CheckpointError(f"model.init {folder}: no such model folder (train the previous stage first)")
    return DepthModel.from_pretrained(section.init, section.family, section.base)


def _generator(*key: int) -> torch.Generator:
    seed = 0
    for part in key:
        seed = (seed * 1_000_003 + int(part)) % (2**63)
    return torch.Generator().manual_seed(seed)


def finished_checkpoints(out: Path) -> list[Path]:
    """A run's complete checkpoint folders, oldest first."""
    folder = out / CHECKPOINTS
    return sorted(p for p in folder.glob("step_*") if (p / STATE_FILE).is_file()) if folder.is_dir() else []


def latest_checkpoint(out: Path) -> Path | None:
    done = finished_checkpoints(out)
    return done[-1] if done else None


def trained_module(config: TrainConfig, model: DepthModel) -> torch.nn.Module:
    """The module a stage of ``config`` optimises (and keeps EMA weights of), over ``model``'s parts."""
    if config.task == "vae":
        return VaeReconstruction(model.vae)
    rgb_encoder = None
    if config.objective.encoder == "designed":
        from videodepth.training.designed_vae import designed_latents

        rgb_encoder = designed_latents
    return Denoiser(model, rgb_encoder=rgb_encoder)


def model_with_ema(model: DepthModel, config: TrainConfig, ema: EMAModel) -> DepthModel:
    """A detached copy of ``model`` with ``ema``'s weights in the module that ``config`` trains."""
    detail = copy.deepcopy(model.detail_encoder)
    copied = dataclasses.replace(
        model, unet=copy.deepcopy(model.unet), vae=copy.deepcopy(model.vae), detail_encoder=detail
    )
    ema.copy_to(trained_module(config, copied).parameters())
    # a model trained from another inherits neither its description nor its measured step limit
    settings = dataclasses.replace(model.config, **{"note": "", "max_helpful_steps": 0, **config.inference})
    encoder = copy.deepcopy(model.image_encoder).cpu().float() if model.image_encoder is not None else None
    return DepthModel(
        vae=copied.vae.cpu().float(),
        unet=copied.unet.cpu().float(),
        scheduler=model.scheduler,
        config=settings,
        image_encoder=encoder,
        feature_extractor=model.feature_extractor,
        detail_encoder=detail.cpu().float() if detail is not None else None,
    ).eval()


def export_checkpoint(run: Path, out: Path, step: int | None = None) -> Path:
    """A run's checkpoint (the latest, or ``step``) as a model folder with its EMA weights, the
    same folder the run writes as ``model/`` when it ends: for a look at a run in progress, or a
    stage that starts from the middle of another. Load paths in the run's config (``model.init``)
    are read as they were written, so run it from the run's working directory."""
    config = load_config(run / "config.yaml")
    if step is None:
        folder = latest_checkpoint(run)
        if folder is None:
            raise InputError(f"{run}: no finished checkpoint to export")
    else:
        folder = run / CHECKPOINTS / f"step_{step:07d}"
        if not (folder / STATE_FILE).is_file():
            kept = [p.name for p in finished_checkpoints(run)]
            raise InputError(f"{run}: no checkpoint at step {step} (kept: {', '.join(kept) or 'none'})")
    model = initial_model(config)
    trained = trained_module(config, model)
    ema = EMAModel(trained.parameters(), decay=config.ema_decay)
    try:
        ema.load_state_dict(torch.load(folder / "state.pt", map_location="cpu", weights_only=False)["ema"])
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(
            f"{folder}: cannot read its EMA weights ({str(error).splitlines()[0][:200]})"
        ) from None
    model_with_ema(model, config, ema).save_pretrained(out)
    return Path(out)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        out: str | Path | None = None,
        resume: bool = False,
        show_progress: bool = True,
    ):
        self.config = config
        self.out = Path(out or config.out)
        on_gpu = torch.cuda.is_available()
        self.accelerator = Accelerator(
            cpu=not on_gpu,
            mixed_precision=config.mixed_precision if on_gpu else "no",
            gradient_accumulation_steps=config.optim.grad_accum,
        )
        self.show_progress = show_progress and self.accelerator.is_main_process
        self._prepare_output(resume)
        torch.manual_seed(config.seed)
        self.model = initial_model(config)
        self._check_encoder()
        self._check_validation_data()
        if config.optim.gradient_checkpointing:
            self.model.unet.enable_gradient_checkpointing()
        self.device = self.accelerator.device
        self.module, parameters = self._trainable_module()
        self.optimizer = torch.optim.AdamW(
            parameters, lr=config.optim.lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
        )
        self.ema = EMAModel(self.module.parameters(), decay=config.ema_decay)
        self.module, self.optimizer = self.accelerator.prepare(self.module, self.optimizer)
        self.ema.to(self.device)
        self.model.vae.to(self.device)
        if self.model.image_encoder is not None:
            self.model.image_encoder.requires_grad_(False).eval().to(self.device)
        self.step = 0
        if resume:
            self._load_checkpoint()

    # ------------------------------------------------------------------------- setup
    def _prepare_output(self, resume: bool) -> None:
        if not resume and latest_checkpoint(self.out) is not None:
            raise InputError(f"{self.out} already holds checkpoints; pass --resume or choose another --out")
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(
                yaml.safe_dump(_plain(dataclasses.asdict(self.config)), sort_keys=False)
            )
        self.accelerator.wait_for_everyone()

    def _check_validation_data(self) -> None:
        """A missing benchmark folder is found before training, not after its last step."""
        folder = self.config.validation.synthbench
        if folder and not Path(folder).is_dir():
            raise InputError(f"validation.synthbench {folder}: no such folder (render it, or set it empty)")

    def _check_encoder(self) -> None:
        if self.config.objective.encoder == "designed" and self.model.config.rgb_latents != "mode_scaled":
            raise InputError(
                f"objective.encoder: designed gives mode_scaled latents, but this "
                f"{self.model.config.family} model is conditioned on {self.model.config.rgb_latents} "
                "ones; use encoder: vae"
            )

    def _trainable_module(self) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
        self.model.unet.requires_grad_(False)
        self.model.vae.requires_grad_(False)
        module = trained_module(self.config, self.model).train()
        if self.config.task == "vae":
            self.model.vae.requires_grad_(True)
            return module, list(module.parameters())
        # the detail encoder works on single frames, so it counts as spatial
        return module, select_trainable(module, self.config.trainable)

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.module)

    # ------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Module, optimizer (and fp16 loss scaler), EMA and step; written by the main process,
        atomically, keeping the last few."""
        target = self.out / CHECKPOINTS / f"step_{self.step:07d}"
        if self.accelerator.is_main_process:
            scaler = self.accelerator.scaler
            state = {
                "module": self.unwrapped.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "step": self.step,
            }
            with atomic_dir(target) as folder:
                torch.save(state, folder / "state.pt")
                (folder / STATE_FILE).write_text(
                    json.dumps({"step": self.step, "num_processes": self.accelerator.num_processes}) + "\n"
                )
            for old in sorted((self.out / CHECKPOINTS).glob("step_*"))[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return target

    def _load_checkpoint(self) -> None:
        folder = latest_checkpoint(self.out)
        if folder is None:
            if self.accelerator.is_main_process:
                print(f"no checkpoint in {self.out}; starting from step 0")
            return
        try:
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
            self.unwrapped.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.ema.load_state_dict(state["ema"])
            if state["scaler"] is not None and self.accelerator.scaler is not None:
                self.accelerator.scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
        except (OSError, KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{folder}: cannot resume ({str(error).splitlines()[0][:200]})") from None
        self.ema.to(self.device)

    def save_model(self) -> Path:
        """The EMA weights as a model folder that ``videodepth run --model`` loads."""
        model = self.ema_model()
        target = self.out / MODEL_FOLDER
        if self.accelerator.is_main_process:
            model.save_pretrained(target)
        self.accelerator.wait_for_everyone()
        return target

    def ema_model(self) -> DepthModel:
        """A detached copy of the model with the EMA weights in the trained module."""
        return model_with_ema(self.model, self.config, self.ema)

    # ------------------------------------------------------------------------ losses
    def _batch_loss(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        rgb = batch["rgb"].to(self.device)
        disparity = batch["disparity"].to(self.device)
        B, T = rgb.shape[:2]
        depth3 = disparity.flatten(0, 1).repeat(1, 3, 1, 1)
        if self.config.task == "vae":
            images = torch.cat([rgb.flatten(0, 1), depth3])
            with self.accelerator.autocast():
                recon, kl = self.module(images, generator)
            recon = recon.float()
            loss = F.l1_loss(recon, images) + F.mse_loss(recon, images) + self.config.objective.kl_weight * kl
            return loss, B * T
        x0 = self._encoder()(depth3)
        x0 = x0.reshape(B, T, *x0.shape[1:])
        weight = batch["weight"].to(self.device)  # the dataset's invalid-pixel policy, per pixel
        if bool((weight == 1).all()):
            weight = None  # every pixel counts: the plain mean
        else:
            factor = rgb.shape[-1] // x0.shape[-1]
            weight = latent_cell_weights(weight.flatten(0, 1), factor).reshape(B, T, 1, *x0.shape[-2:])
        objective = self.config.objective
        sigma = draw_sigmas(
            B,
            T,
            objective.noise,
            objective.p_mean,
            objective.p_std,
            generator,
            objective.sigma_max_fraction,
            self.model.scheduler.config.sigma_max,
        ).to(self.device)
        noise = torch.randn(x0.shape, generator=generator).to(self.device)
        denoiser = self.unwrapped
        with self.accelerator.autocast():
            # the step's generator feeds the conditioning's draws through the same protocol that
            # inference keys to frames, so the model is trained on what it is later fed
            cond = denoiser.conditioning(rgb, GeneratorNoise(generator))
            loss = denoiser.loss(
                x0, cond, sigma, noise, weight, objective.scale_shift_weight, through=self.module
            )
        return loss, B * T

    def _encoder(self):
        if self.config.objective.encoder == "designed":
            from videodepth.training.designed_vae import designed_latents

            return designed_latents
        return lambda images: encode_scaled(self.model.vae, images)

    def _set_lr(self) -> float:
        optim = self.config.optim
        lr = optim.lr * min(1.0, (self.step + 1) / optim.warmup_steps) if optim.warmup_steps else optim.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    # -------------------------------------------------------------------------- loop
    def _loader(self):
        data = self.config.data
        dataset = StepKeyedShards(
            data.shards,
            data.size,
            self.config.seed,
            data.max_zoom,
            invalid=self.config.objective.invalid,
            colour_jitter=data.colour_jitter,
            flip=data.flip,
            vertical_flip=data.vertical_flip,
            real_roots=data.real_shards,
            real_fraction=data.real_fraction,
            held_out=tuple(data.held_out),
            match_orientation=data.match_orientation,
        )
        sampler = StepBatchSampler(
            self.step,
            self.config.steps,
            data.batch_size,
            self.config.optim.grad_accum,
            data.min_len,
            data.max_len,
            self.config.seed,
            self.accelerator.process_index,
        )
        return step_loader(dataset, sampler, data.workers)

    def train(self) -> Path:
        config = self.config
        if self.step >= config.steps:
            return self.save_model()
        logger = RunLogger(self.out, self.accelerator.is_main_process, resume=self.step > 0)
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            disable=not self.show_progress,
            desc=config.name,
            dynamic_ncols=True,
        )
        rank, micro, frames, losses = self.accelerator.process_index, 0, 0, []
        started = time.perf_counter()
        for batch in self._loader():
            with self.accelerator.accumulate(self.module):
                loss, count = self._batch_loss(batch, _generator(config.seed, self.step, micro, rank))
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients and config.optim.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.module.parameters(), config.optim.max_grad_norm)
                lr = self._set_lr()
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().float().item())
            frames += count
            micro += 1
            if micro < config.optim.grad_accum:
                continue
            micro = 0
            self.step += 1
            self.ema.step(self.module.parameters())
            elapsed = time.perf_counter() - started
            step_loss = sum(losses[-config.optim.grad_accum :]) / config.optim.grad_accum
            fps = frames * self.accelerator.num_processes / max(elapsed, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", frames_s=f"{fps:.1f}")
            if self.step % config.log_every == 0 or self.step == config.steps:
                recent = losses[-config.log_every * config.optim.grad_accum :]
                logger.scalars(
                    self.step,
                    {
                        "loss": sum(recent) / len(recent),
                        "lr": lr,
                        "frames_per_s": fps,
                        "elapsed_s": elapsed,
                        "peak_memory_mib": self._peak_memory_mib(),
                    },
                )
            if (
                config.checkpoint_every
                and self.step % config.checkpoint_every == 0
                and self.step < config.steps
            ):
                self.save_checkpoint()
            if (
                config.validation.every
                and self.step % config.validation.every == 0
                and self.step < config.steps
            ):
                self.validate(logger)
            if config.max_minutes and self._out_of_time(started):
                tqdm.write(
                    f"{config.name}: wall-clock budget of {config.max_minutes} min reached at step {self.step}"
                )
                break
        bar.close()
        self.save_checkpoint()
        model = self.save_model()  # before validating, so that a failed validation loses nothing
        self.validate(logger)
        logger.close()
        return model

    def _peak_memory_mib(self) -> float:
        """Peak GPU memory allocated on this process's device, or peak RSS on the CPU: what decides
        the batch and clip length a machine can take."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return peak_rss_mib()

    def _out_of_time(self, started: float) -> bool:
        """The same decision on every process (the main process's clock), so DDP ranks stop together."""
        spent = torch.tensor([time.perf_counter() - started], device=self.device)
        spent = (
            self.accelerator.reduce(spent, reduction="max") if self.accelerator.num_processes > 1 else spent
        )
        return float(spent) > self.config.max_minutes * 60

    def validate(self, logger: RunLogger | None = None) -> dict[str, float]:
        settings = self.config.validation
        results: dict[str, float] = {}
        if settings.synthbench and self.accelerator.is_main_process:
            from videodepth.training.validate import validate_model

            results = validate_model(
                self.ema_model(),
                settings.synthbench,
                settings.clips,
                settings.frames,
                settings.steps,
                task=self.config.task,
                device=self.device,
            )
            if logger is not None:
                logger.scalars(self.step, {f"val_{k}": v for k, v in results.items()}, table="validation")
            if self.show_progress:
                tqdm.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
        self.accelerator.wait_for_everyone()
        return results


class RunLogger:
    """CSV files (one per table) and, where installed, TensorBoard."""

    def __init__(self, out: Path, active: bool, resume: bool):
        self.out, self.active, self.resume = out, active, resume
        self.tensorboard = None
        if active:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                pass

    def scalars(self, step: int, values: dict[str, float], table: str = "train") -> None:
        if not self.active:
            return
        path = self.out / f"{table}.csv"
        fields = ["step", *values]
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow({"step": step, **{k: _round(v) for k, v in values.items()}})
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(f"{table}/{key}", value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _round(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else value


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def train(
    config: TrainConfig, out: str | Path | None = None, resume: bool = False, show_progress: bool = True
) -> Path:
    return Trainer(config, out, resume, show_progress).train()
