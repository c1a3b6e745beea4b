"""The training plan, worked out before any model loads: images, repeats, buckets, steps
per epoch, which files are saved when, and their names.

No torch, so `--dry-run` and the GUI's live summary stay instant. Imports trainer.config
and trainer.data (the resolved dataset, folders) only.
"""
