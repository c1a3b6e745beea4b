"""One training run, read top to bottom: preflight, models, network, data, the loop on
accelerate, the step, saves and training state (one save path), resume, guards, outputs.

The top of the engine below `trainer.api`: may import every other package of trainer.
"""
