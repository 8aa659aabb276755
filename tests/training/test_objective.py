"""The EDM objective on cases computed by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from videodepth.data.dataset import fill_invalid_nearest
from videodepth.diffusion.preconditioning import c_in, c_noise, c_out, c_skip
from videodepth.models.config import DepthModelConfig
from videodepth.models.denoiser import Conditioning, Denoiser, align_scale_shift
from videodepth.training.objective import (
    draw_sigmas,
    latent_cell_weights,
)


class ConstantNetwork(torch.nn.Module):
    """Returns a fixed output and records what it was called with."""

    def __init__(self, output_fn):
        super().__init__()
        self.output_fn, self.calls = output_fn, []

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict=True):
        self.calls.append((sample, timestep))
        return (self.output_fn(sample),)


def denoising_loss(net, x0, rgb, sigma, noise, tokens, ids, weight=None, scale_shift_weight=0.0):
    """The denoiser's training loss around a toy network in place of the UNet."""
    model = SimpleNamespace(unet=net, detail_encoder=None, config=DepthModelConfig())
    cond = Conditioning(rgb, tokens)
    return Denoiser(model).loss(x0, cond, sigma, noise, weight, scale_shift_weight)


def _inputs(sigma):
    x0 = torch.ones(1, len(sigma), 4, 2, 3)
    rgb = torch.full_like(x0, 0.5)
    return (
        x0,
        rgb,
        torch.tensor([sigma]),
        torch.zeros_like(x0),
        torch.zeros(1, len(sigma), 8),
        torch.zeros(1, 3),
    )


def test_zero_network_loss_is_sigma2_over_1_plus_sigma2():
    # F = 0 and eps = 0: D = c_skip * x0, so lambda * (D - x0)^2 = sigma^2 / (1 + sigma^2).
    x0, rgb, sigma, noise, tokens, ids = _inputs([1.0])
    net = ConstantNetwork(lambda s: torch.zeros_like(s[:, :, :4]))
    assert denoising_loss(net, x0, rgb, sigma, noise, tokens, ids).item() == pytest.approx(0.5, rel=1e-6)


def test_per_frame_sigmas_average_their_own_losses():
    x0, rgb, sigma, noise, tokens, ids = _inputs([1.0, 2.0])
    net = ConstantNetwork(lambda s: torch.zeros_like(s[:, :, :4]))
    loss = denoising_loss(net, x0, rgb, sigma, noise, tokens, ids)
    assert loss.item() == pytest.approx((0.5 + 0.8) / 2, rel=1e-6)


def test_network_input_is_preconditioned_and_conditioned():
    x0, rgb, sigma, _, tokens, ids = _inputs([0.5, 3.0])
    noise = torch.full_like(x0, 2.0)
    net = ConstantNetwork(lambda s: torch.zeros_like(s[:, :, :4]))
    denoising_loss(net, x0, rgb, sigma, noise, tokens, ids)
    sample, timestep = net.calls[0]
    x = x0 + sigma[..., None, None, None] * noise
    torch.testing.assert_close(sample[:, :, :4], c_in(sigma) * x)  # depth first
    torch.testing.assert_close(sample[:, :, 4:], rgb)
    torch.testing.assert_close(timestep, c_noise(sigma))


def test_ideal_network_has_zero_loss():
    x0, rgb, sigma, _, tokens, ids = _inputs([0.1, 5.0])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    x = x0 + sigma[..., None, None, None] * noise
    ideal = (x0 - c_skip(sigma) * x) / c_out(sigma)
    net = ConstantNetwork(lambda s: ideal)
    assert denoising_loss(net, x0, rgb, sigma, noise, tokens, ids).item() == pytest.approx(0.0, abs=1e-10)


def test_weights_select_latent_cells():
    x0, rgb, sigma, noise, tokens, ids = _inputs([1.0])
    x0[..., 0] = 0.0  # first column: D - x0 = 0 there (D = c_skip * 0)
    net = ConstantNetwork(lambda s: torch.zeros_like(s[:, :, :4]))
    weight = torch.zeros(1, 1, 1, 2, 3)
    weight[..., 0] = 1.0
    assert denoising_loss(net, x0, rgb, sigma, noise, tokens, ids, weight).item() == pytest.approx(0.0)
    weight[..., 0], weight[..., 1] = 0.0, 1.0
    assert denoising_loss(net, x0, rgb, sigma, noise, tokens, ids, weight).item() == pytest.approx(0.5)


def test_scale_shift_alignment_by_hand():
    # target 0 1 2, prediction 0 2 1: scale cov/var = (1/3)/(2/3) = 0.5, both means 1.
    target = torch.tensor([0.0, 1.0, 2.0]).reshape(1, 1, 1, 1, 3)
    aligned = align_scale_shift(torch.tensor([0.0, 2.0, 1.0]).reshape(1, 1, 1, 1, 3), target)
    torch.testing.assert_close(aligned.flatten(), torch.tensor([0.5, 1.5, 1.0]))


def test_alignment_is_per_clip_and_channel_and_ignores_unweighted_cells():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(2, 3, 4, 5, 6, generator=generator)
    scale, shift = torch.tensor([2.5, -0.5]), torch.tensor([0.3, 1.0])
    prediction = scale[:, None, None, None, None] * target + shift[:, None, None, None, None]
    weight = torch.ones(2, 3, 1, 5, 6)
    weight[..., 0], prediction[..., 0] = 0.0, 99.0  # outliers where the weight is zero
    aligned = align_scale_shift(prediction, target, weight)
    torch.testing.assert_close(aligned[..., 1:], target[..., 1:])
    other = align_scale_shift(3.0 * prediction - 7.0, target, weight)  # invariant to affine changes
    torch.testing.assert_close(other, aligned)


def test_alignment_matches_the_evaluation_protocols_fit():
    # the same least squares as eval.metrics.fit_scale_shift (disparity = 1 / depth, a valid mask)
    from videodepth.eval.metrics import GT_INVERSE_EPS, fit_scale_shift

    generator = torch.Generator().manual_seed(3)
    prediction = torch.rand(1, 4, 1, 6, 7, generator=generator, dtype=torch.float64) + 0.1
    disparity = torch.rand(1, 4, 1, 6, 7, generator=generator, dtype=torch.float64) + 0.5
    valid = torch.rand(1, 4, 1, 6, 7, generator=generator) > 0.3
    depth = 1.0 / disparity - GT_INVERSE_EPS
    scale, shift = fit_scale_shift(
        prediction[0, :, 0].numpy(), depth[0, :, 0].numpy(), valid[0, :, 0].numpy()
    )
    aligned = align_scale_shift(prediction, disparity, valid.double())
    torch.testing.assert_close(aligned, scale * prediction + shift)


def test_the_aligned_term_ignores_a_global_scale_error():
    # F = 0, eps = 0: D = c_skip * x0, a pure rescaling, so the aligned term adds nothing to
    # sigma^2 / (1 + sigma^2); a network returning -x0 gets a plain error but no aligned one either.
    x0, rgb, sigma, noise, tokens, ids = _inputs([1.0])
    x0 = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    net = ConstantNetwork(lambda s: torch.zeros_like(s[:, :, :4]))
    loss = denoising_loss(net, x0, rgb, sigma, noise, tokens, ids, scale_shift_weight=3.0)
    plain = denoising_loss(net, x0, rgb, sigma, noise, tokens, ids)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5) and plain.item() > 0.1


def test_the_aligned_term_adds_the_structure_error():
    x0, rgb, sigma, noise, tokens, ids = _inputs([1.0])
    x0 = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    scrambled = x0.flip(-1)
    # choose F so that D = scrambled: D = c_skip x0 + c_out F
    net = ConstantNetwork(lambda s: (scrambled - c_skip(sigma) * x0) / c_out(sigma))
    plain = denoising_loss(net, x0, rgb, sigma, noise, tokens, ids)
    both = denoising_loss(net, x0, rgb, sigma, noise, tokens, ids, scale_shift_weight=2.0)
    aligned = align_scale_shift(scrambled, x0)
    expected = plain.item() + 2.0 * (2.0 * (aligned - x0) ** 2).mean().item()  # lambda(1) = 2
    assert both.item() == pytest.approx(expected, rel=1e-5)


def test_sigma_draws_per_clip_and_per_frame():
    generator = torch.Generator().manual_seed(0)
    per_clip = draw_sigmas(3, 5, "clip", 0.7, 1.6, generator)
    assert per_clip.shape == (3, 5) and torch.all(per_clip == per_clip[:, :1])
    per_frame = draw_sigmas(2000, 5, "frame", 0.7, 1.6, generator)
    assert not torch.all(per_frame == per_frame[:, :1])
    logs = per_frame.log()
    assert logs.mean().item() == pytest.approx(0.7, abs=0.05)
    assert logs.std().item() == pytest.approx(1.6, abs=0.05)
    with pytest.raises(ValueError):
        draw_sigmas(1, 1, "pixel", 0.0, 1.0)


def test_a_fraction_of_sigma_draws_sits_at_the_samplers_first_level():
    plain = draw_sigmas(4000, 3, "frame", 2.5, 1.0, torch.Generator().manual_seed(1))
    mixed = draw_sigmas(4000, 3, "frame", 2.5, 1.0, torch.Generator().manual_seed(1), 0.3, 700.0)
    at_top = mixed == 700.0
    assert at_top.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.equal(mixed[~at_top], plain[~at_top])  # the other draws are the plain ones
    assert not (plain == 700.0).any()
    per_clip = draw_sigmas(500, 4, "clip", 2.5, 1.0, torch.Generator().manual_seed(2), 0.5, 700.0)
    assert torch.all(per_clip == per_clip[:, :1])  # one level per clip, top or not
    assert (per_clip[:, 0] == 700.0).float().mean().item() == pytest.approx(0.5, abs=0.06)


def test_invalid_pixels_take_the_nearest_valid_value():
    disparity = torch.tensor([[[[0.5, -1.0, -1.0, 0.2]]]])
    valid = torch.tensor([[[[True, False, False, True]]]])
    filled = fill_invalid_nearest(disparity, valid)
    assert filled.flatten().tolist() == pytest.approx([0.5, 0.5, 0.2, 0.2])
    assert latent_cell_weights(valid.expand(1, 1, 2, 4), 2).flatten().tolist() == [0.5, 0.5]
    assert math.isclose(fill_invalid_nearest(disparity, ~valid | valid).sum().item(), disparity.sum().item())
