"""FIELDS: the spec of every setting, in declaration order (tab by tab)."""

from __future__ import annotations

from trainer.config.model import TrainingConfig
from trainer.config.schema import FieldSpec, spec_from_field

FIELDS: dict[str, FieldSpec] = {
    name: spec_from_field(name, info.annotation, info) for name, info in TrainingConfig.model_fields.items()
}
SECRET_KEYS = frozenset(name for name, spec in FIELDS.items() if spec.secret)
