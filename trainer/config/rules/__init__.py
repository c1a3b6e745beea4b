"""Kohya's rules for setting values, as pure functions (no torch): block-wise values,
optimizer arguments, LR schedules, PyTorch scheduler names, LyCORIS options.

The config checks validate with them and the engine applies them; imports nothing of trainer.
"""
