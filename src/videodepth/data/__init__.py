"""Clips, training shards, benchmark readers and the step-keyed training dataset.

Nothing here imports :mod:`videodepth.synth` (the procedural renderer) except
``data/commands.py``, the ``videodepth data ...`` command layer.
"""
