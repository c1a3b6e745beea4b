"""The Gradio front-end of the LoRA trainer: tabs derived from the config schema, presets,
and the run panel. Never imports torch; reaches the trainer only through `trainer.api`."""
