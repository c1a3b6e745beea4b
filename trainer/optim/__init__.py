"""Optimizers and learning-rate schedulers, built by their Kohya names (torch).

The rules for their arguments and the schedule maths are pure and live in
`trainer.config.rules`; this package imports trainer.config only. `fp32_math`: with
full_fp16, the optimizer's step on fp32 copies of the fp16 LoRA weights.
"""
