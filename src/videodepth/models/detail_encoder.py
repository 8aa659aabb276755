"""A small learned image encoder whose features join the VAE's RGB latents.

The published models condition on SVD's VAE latents, which carry texture and edges. The small
model's VAE is designed for speed and encodes a frame as an 8x8-pooled colour thumbnail, which
leaves the UNet no sub-cell detail (see docs/TRAINING.md). This encoder restores some: a few
strided convolutions from the full-resolution frame to the latent grid, trained with the UNet,
whose output channels are concatenated after the RGB latents (UNet input: noisy depth latent,
RGB latent, detail features).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

DEFAULT_WIDTHS = (16, 32, 32)


class DetailEncoder(ModelMixin, ConfigMixin):
    """[N, 3, H, W] in [-1, 1] -> [N, out_channels, H/8, W/8]."""

    @register_to_config
    def __init__(self, out_channels: int = 8, widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        layers: list[torch.nn.Module] = []
        previous = 3
        for width in widths:  # one stride-2 convolution per halving: 3 of them reach the 1/8 grid
            layers += [torch.nn.Conv2d(previous, width, 3, stride=2, padding=1), torch.nn.SiLU()]
            previous = width
        # one more 3x3 at the latent grid widens the view to about 30 pixels
        layers += [
            torch.nn.Conv2d(previous, previous, 3, padding=1),
            torch.nn.SiLU(),
            torch.nn.Conv2d(previous, out_channels, 1),
        ]
        self.layers = torch.nn.Sequential(*layers)

    @property
    def downsampling(self) -> int:
        return 2 ** len(self.config.widths)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def widen_unet_input(unet: torch.nn.Module, extra_channels: int) -> None:
    """Give ``unet`` ``extra_channels`` more input channels whose weights start at zero, so the
    widened network computes exactly what it did before until training moves them."""
    old = unet.conv_in
    new = torch.nn.Conv2d(
        old.in_channels + extra_channels,
        old.out_channels,
        old.kernel_size,
        padding=old.padding,
        dtype=old.weight.dtype,
        device=old.weight.device,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=old.in_channels + extra_channels)


def _seeded_encoder(channels: int, widths: tuple[int, ...], seed: int) -> DetailEncoder:
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's generator alone
        torch.manual_seed(seed)
        return DetailEncoder(out_channels=channels, widths=tuple(widths))


def add_detail_encoder(model, channels: int, seed: int = 0, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> None:
    """Attach a fresh :class:`DetailEncoder` to a model without one (in place)."""
    if model.detail_encoder is not None:
        raise ValueError("the model already has a detail encoder")
    model.detail_encoder = _seeded_encoder(channels, widths, seed).to(model.unet.dtype)
    widen_unet_input(model.unet, channels)


def widen_detail_encoder(model, channels: int, widths: tuple[int, ...], seed: int = 0) -> None:
    """Replace a model's detail encoder by a wider one that computes the same first features
    (in place): more capacity for fine-tuning without losing what the model has learned.

    Each convolution keeps its old filters; the new filters start at random, but everything
    they feed into the old features (and the UNet's new input channels) starts at zero, so the
    model's output is unchanged until training moves those weights (Net2Net-style, with zeros).
    """
    old = model.detail_encoder
    old_widths, old_channels = tuple(old.config.widths), old.config.out_channels
    same_depth = len(widths) == len(old_widths)
    if (
        not same_depth
        or channels < old_channels
        or any(n < o for n, o in zip(widths, old_widths, strict=True))
    ):
        raise ValueError(
            f"a detail encoder can only be widened: it has widths {list(old_widths)} and "
            f"{old_channels} channels, asked for {list(widths)} and {channels}"
        )
    new = _seeded_encoder(channels, widths, seed).to(old.dtype)
    old_convs = [m for m in old.layers if isinstance(m, torch.nn.Conv2d)]
    new_convs = [m for m in new.layers if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for before, after in zip(old_convs, new_convs, strict=True):
            kept_out, kept_in = before.weight.shape[:2]
            after.weight[:kept_out] = 0
            after.weight[:kept_out, :kept_in] = before.weight
            after.bias[:kept_out] = before.bias
    model.detail_encoder = new
    if channels > old_channels:
        widen_unet_input(model.unet, channels - old_channels)
