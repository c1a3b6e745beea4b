"""Captions and prompts -> text-encoder conditioning: attention weights `(word:1.3)`,
long captions, clip skip, as Kohya does it.

Imports trainer.transfer only (and torch).
"""
