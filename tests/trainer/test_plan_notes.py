"""The plan's warnings also come as notes a front-end can say in its own language."""

from __future__ import annotations

from trainer.api import make_plan
from trainer.config import FIELDS, validate_values


def config(tmp_path, dataset, **overrides):
    values = {name: spec.default for name, spec in FIELDS.items()}
    (tmp_path / "model").mkdir(exist_ok=True)
    values.update(
        pretrained_model_name_or_path=str(tmp_path / "model"),
        train_data_dir=str(dataset),
        output_dir=str(tmp_path / "out"),
        output_name="mylora",
        mixed_precision="no",
        optimizer="AdamW",
        **overrides,
    )
    return validate_values(values)


def test_every_warning_has_a_note_with_its_code_and_numbers(tmp_path, demo_dataset):
    plan = make_plan(config(tmp_path, demo_dataset, network_dim=4, network_alpha=8))
    assert [n["text"] for n in plan.notes] == plan.warnings  # one note per warning, in order
    by_code = {n["code"]: n for n in plan.notes}
    assert by_code["missing_captions"] == {
        "code": "missing_captions",
        "text": by_code["missing_captions"]["text"],
        "folder": "5_demochar",
        "missing": 1,
        "images": 5,
        "name": "demochar",
        "ext": ".txt",
    }
    assert by_code["few_repeats"]["total"] == plan.image_repeats
    assert by_code["alpha_above_rank"]["alpha"] == 8.0 and by_code["alpha_above_rank"]["dim"] == 4
    assert "notes" in plan.to_json()


def test_a_warning_without_a_code_is_free_text(tmp_path, demo_dataset):
    nested = tmp_path / "data"
    nested.mkdir()
    (nested / "2_x").mkdir()
    (nested / "2_x" / "inner").mkdir()
    for image in sorted((demo_dataset / "5_demochar").glob("*.png"))[:2]:
        (nested / "2_x" / image.name).write_bytes(image.read_bytes())
        (nested / "2_x" / "inner" / image.name).write_bytes(image.read_bytes())
    plan = make_plan(config(tmp_path, nested))
    texts = [n for n in plan.notes if n["code"] == "text"]
    assert texts and any("not scanned" in n["text"] for n in texts)
