"""Every setting, declared once: one pydantic mixin per tab area, each field with its
type, default, range, English and Japanese help and tab (`trainer.config.schema.setting`).

`trainer.config.model.TrainingConfig` assembles them; the GUI, the CLI, presets and
validation derive from it. Imports trainer.config.schema and trainer.config.rules only.
"""
