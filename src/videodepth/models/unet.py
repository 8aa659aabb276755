"""The spatio-temporal UNet with one noise level per frame.

diffusers' ``UNetSpatioTemporalConditionModel`` takes one timestep per clip and one
cross-attention token per clip. Depth needs more: ChronoDepth labels every frame with its own
noise level (clean context next to noisy frames) and DepthCrafter gives every frame its own
CLIP token. This subclass keeps the weights and layout of SVD's UNet (so published checkpoints
load unchanged) and only generalises the embedding of time and conditioning.
"""

from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput


def _per_frame_timesteps(timestep, batch_size: int, num_frames: int, device) -> torch.Tensor:
    timesteps = torch.as_tensor(timestep, device=device)
    if not timesteps.is_floating_point():
        timesteps = timesteps.to(torch.float32)
    if timesteps.dim() == 0:
        timesteps = timesteps.expand(batch_size, num_frames)
    elif timesteps.shape == (batch_size,):
        timesteps = timesteps[:, None].expand(batch_size, num_frames)
    elif timesteps.numel() == batch_size * num_frames:
        timesteps = timesteps.reshape(batch_size, num_frames)
    else:
        raise ValueError(f"timestep of shape {tuple(timesteps.shape)} fits neither the clip nor its frames")
    return timesteps.reshape(-1)


def _per_frame_tokens(states: torch.Tensor, batch_size: int, num_frames: int) -> torch.Tensor:
    """Any of [B, F, D], [B, 1, D] or [B*F, 1, D] -> [B*F, 1, D]."""
    if states.dim() == 3 and states.shape[0] == batch_size * num_frames:
        return states
    if states.shape[:2] == (batch_size, num_frames):
        return states.flatten(0, 1).unsqueeze(1)
    if states.shape[:2] == (batch_size, 1):
        return states.repeat_interleave(num_frames, dim=0)
    raise ValueError(f"encoder_hidden_states of shape {tuple(states.shape)} fits neither clip nor frames")


class VideoDepthUNet(UNetSpatioTemporalConditionModel):
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        return_dict: bool = True,
    ):
        """``sample`` [B, F, C, H, W]; ``timestep`` a scalar, one per clip [B] or one per frame
        [B, F]; ``encoder_hidden_states`` [B, F, D], [B, 1, D] or [B*F, 1, D]."""
        batch_size, num_frames = sample.shape[:2]
        timesteps = _per_frame_timesteps(timestep, batch_size, num_frames, sample.device)

        emb = self.time_embedding(self.time_proj(timesteps).to(sample.dtype))
        time_embeds = self.add_time_proj(added_time_ids.flatten()).reshape(batch_size, -1).to(emb.dtype)
        emb = emb + self.add_embedding(time_embeds).repeat_interleave(num_frames, dim=0)
        tokens = _per_frame_tokens(encoder_hidden_states, batch_size, num_frames).to(sample.dtype)

        hidden = self.conv_in(sample.flatten(0, 1))
        indicator = torch.zeros(batch_size, num_frames, dtype=hidden.dtype, device=hidden.device)
        block_kwargs = {"temb": emb, "image_only_indicator": indicator}

        skips = (hidden,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                hidden, residuals = block(hidden_states=hidden, encoder_hidden_states=tokens, **block_kwargs)
            else:
                hidden, residuals = block(hidden_states=hidden, **block_kwargs)
            skips += residuals

        hidden = self.mid_block(hidden_states=hidden, encoder_hidden_states=tokens, **block_kwargs)

        for block in self.up_blocks:
            residuals, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            if getattr(block, "has_cross_attention", False):
                hidden = block(
                    hidden_states=hidden,
                    res_hidden_states_tuple=residuals,
                    encoder_hidden_states=tokens,
                    **block_kwargs,
                )
            else:
                hidden = block(hidden_states=hidden, res_hidden_states_tuple=residuals, **block_kwargs)

        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        out = hidden.reshape(batch_size, num_frames, *hidden.shape[1:])
        return UNetSpatioTemporalConditionOutput(sample=out) if return_dict else (out,)
