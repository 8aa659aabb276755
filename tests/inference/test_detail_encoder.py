"""The small model's learned detail encoder: its grid, a lossless attachment, and its folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import moving_frames
from videodepth.errors import CheckpointError
from videodepth.inference.pipeline import VideoDepthPipeline
from videodepth.models.architectures import random_model
from videodepth.models.bundle import DepthModel
from videodepth.models.detail_encoder import DetailEncoder, add_detail_encoder, widen_detail_encoder


def test_features_land_on_the_latent_grid():
    encoder = DetailEncoder(out_channels=5)
    assert encoder.downsampling == 8
    assert encoder(torch.zeros(2, 3, 64, 96)).shape == (2, 5, 8, 12)


def test_attaching_an_encoder_leaves_the_output_unchanged():
    # The widened UNet input starts at zero, so fine-tuning starts exactly from the loaded model.
    model = random_model("videodepth", seed=1)
    frames = moving_frames(4, 64, 96)
    before = VideoDepthPipeline(model)(frames, steps=2, seed=0)
    add_detail_encoder(model, channels=3, seed=0)
    assert model.unet.config.in_channels == 11
    np.testing.assert_array_equal(VideoDepthPipeline(model)(frames, steps=2, seed=0), before)


def test_the_encoder_changes_the_output_once_its_weights_are_used(tmp_path):
    model = random_model("videodepth", seed=1)
    add_detail_encoder(model, channels=3, seed=0)
    frames = moving_frames(4, 64, 96)
    before = VideoDepthPipeline(model)(frames, steps=2, seed=0)
    with torch.no_grad():
        model.unet.conv_in.weight[:, 8:].normal_(0, 0.5)
    after = VideoDepthPipeline(model)(frames, steps=2, seed=0)
    assert np.abs(after - before).max() > 1e-3
    model.save_pretrained(tmp_path / "m")
    loaded = DepthModel.from_pretrained(tmp_path / "m")
    assert loaded.detail_encoder is not None and loaded.detail_encoder.config.out_channels == 3
    assert np.abs(VideoDepthPipeline(loaded)(frames, steps=2, seed=0) - after).max() < 1e-4


def test_a_folder_whose_parts_disagree_is_refused(tmp_path):
    model = random_model("videodepth", seed=1)
    add_detail_encoder(model, channels=3, seed=0)
    model.save_pretrained(tmp_path / "m")
    DetailEncoder(out_channels=2).save_pretrained(tmp_path / "m" / "detail_encoder")
    with pytest.raises(
        CheckpointError, match="takes 11 input channels but the VAE and detail encoder give 10"
    ):
        DepthModel.from_pretrained(tmp_path / "m")


def _model_that_uses_its_encoder():
    model = random_model("videodepth", seed=1)
    add_detail_encoder(model, channels=3, seed=0)
    with torch.no_grad():  # as after training: the UNet reads the features
        model.unet.conv_in.weight[:, 8:].normal_(0, 0.5)
    return model


def test_widening_the_encoder_leaves_the_output_unchanged():
    model = _model_that_uses_its_encoder()
    frames = moving_frames(4, 64, 96)
    before = VideoDepthPipeline(model)(frames, steps=2, seed=0)
    widen_detail_encoder(model, channels=5, widths=(24, 32, 48), seed=3)
    assert model.unet.config.in_channels == 13 and model.detail_encoder.config.out_channels == 5
    assert tuple(model.detail_encoder.config.widths) == (24, 32, 48)
    np.testing.assert_allclose(VideoDepthPipeline(model)(frames, steps=2, seed=0), before, atol=1e-6)


def test_the_widened_parts_receive_gradients():
    # Zero outgoing weights must not leave the new filters stuck: their activations are not zero.
    model = _model_that_uses_its_encoder()
    widen_detail_encoder(model, channels=5, widths=(24, 32, 48), seed=3)
    features = model.detail_encoder(torch.rand(1, 3, 32, 48) * 2 - 1)
    (
        features.square().sum() + model.unet.conv_in(torch.cat([torch.zeros(1, 8, 4, 6), features], 1)).sum()
    ).backward()
    last = [m for m in model.detail_encoder.layers if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.weight.grad[:3, 48 - 16 :].abs().sum() > 0  # old outputs from new filters (zero at start)
    assert model.unet.conv_in.weight.grad[:, 11:].abs().sum() > 0  # the UNet's new input channels


def test_an_encoder_cannot_be_narrowed():
    model = _model_that_uses_its_encoder()
    with pytest.raises(ValueError, match=r"can only be widened: it has widths \[16, 32, 32\] and 3 channels"):
        widen_detail_encoder(model, channels=3, widths=(16, 16, 32))
