"""Optimizers and learning-rate schedulers, built by their Kohya names (torch).

The rules for their arguments and the schedule maths are pure and live in
`trainer.config.rules`; this package imports trainer.config only.
"""
