"""The dataset: Kohya folders and dataset TOML files, captions, buckets, images, the
latent cache and the loader.

The resolved dataset as one value: `trainer.data.resolved.resolve_dataset(cfg)` reads a
dataset TOML, scans the folders and buckets the images once; the plan, preflight and the
run read the ResolvedDataset it returns.

Imports trainer.config, trainer.files and trainer.text (caption weights) only; no model code.
"""
