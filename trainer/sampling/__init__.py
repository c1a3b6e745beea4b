"""Sample prompts (pure, read by the checks) and the preview images made while training.

Imports trainer.config, trainer.events and trainer.text.
"""
