"""Diffusion mechanics: EDM preconditioning, noise schedules, samplers and noise sources."""
