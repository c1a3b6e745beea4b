"""Sample prompts (pure, read by the checks) and the preview images made while training.

Imports trainer.config, trainer.events and trainer.text; the comparison grid (`grid`,
`grid_cli`) also trainer.models and trainer.files.
"""
