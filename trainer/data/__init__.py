"""The dataset: Kohya folders and dataset TOML files, captions, buckets, images, the
latent cache and the loader.

Imports trainer.config, trainer.files and trainer.text (caption weights) only; no model code.
"""
