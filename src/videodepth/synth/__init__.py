"""The procedural renderer: scene families, ray casting, textures, photographic pipeline,
realistic (stereo-like) labels, SynthBench, the built-in demo clip and an on-the-fly dataset.

Dependencies point one way: ``synth`` builds on ``videodepth.data`` (``Clip``, shards, the
RGB-D folder layout, the item format of the training dataset) and ``videodepth.io``; nothing in
``videodepth.data`` imports ``synth`` except the ``videodepth data ...`` command layer.
"""
