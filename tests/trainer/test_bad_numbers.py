"""Bad numbers and settings are refused by key, never with a traceback: the issue's list,
the CLI's report, and property tests over every setting (docs/ANCHORS.md section 8)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import LEAKS, REQUIRED, assert_allowed, assert_named_without_traceback
from trainer.config import FIELDS, ConfigError, config_from_dict


@pytest.mark.parametrize(
    "key, value",
    [
        ("learning_rate", 0),
        ("learning_rate", -1e-4),
        ("learning_rate", float("nan")),
        ("learning_rate", "nan"),
        ("learning_rate", "1e-4 "),
        ("learning_rate", "fast"),
        ("train_batch_size", 0),
        ("epoch", 0),
        ("save_every_n_epochs", 0),
        ("network_dim", 0),
        ("network_dim", -4),
        ("network_alpha", 0),
        ("network_alpha", -1),
        ("max_resolution", "500,500"),
        ("max_resolution", "32,32"),
        ("max_resolution", "big"),
        ("seed", -5),
        ("seed", 2**32),
        ("train_batch_size", 2.5),
        ("epoch", True),
        ("mixed_precision", "fp8"),
    ],
)
def test_the_issue_list_of_bad_numbers_is_refused_by_key(key, value):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**REQUIRED, key: value})
    assert_named_without_traceback(info.value, key)


def test_alpha_above_rank_is_a_warning_not_an_error(tmp_path):
    from trainer.plan.training_plan import build_plan

    d = tmp_path / "1_x"
    d.mkdir()
    Image.new("RGB", (64, 64)).save(d / "a.png")
    cfg, _ = config_from_dict(
        {
            **REQUIRED,
            "train_data_dir": str(tmp_path),
            "network_dim": 4,
            "network_alpha": 16,
            "max_resolution": "64,64",
            "min_bucket_reso": 64,
        }
    )
    assert any("network_alpha (16) is larger than network_dim (4)" in w for w in build_plan(cfg).warnings)


def test_cli_lists_every_bad_setting_and_exits_2_without_a_traceback(tmp_path, capsys):
    import json

    from trainer.__main__ import main

    preset = tmp_path / "p.json"
    preset.write_text(
        json.dumps(
            {
                **REQUIRED,
                "learning_rate": "1e-4 ",
                "train_batch_size": 0,
                "max_resolution": "500,500",
                "output_name": "a/b",
            }
        )
    )
    assert main(["--config", str(preset)]) == 2
    err = capsys.readouterr().err
    for key in ("learning_rate", "train_batch_size", "max_resolution", "output_name"):
        assert key in err
    assert not any(leak in err for leak in LEAKS)


_padded_numbers = st.builds(
    lambda x, pad: f"{pad[0]}{x}{pad[1]}",
    st.one_of(st.integers(-(10**6), 10**6), st.floats(allow_nan=True)),
    st.sampled_from([("", ""), (" ", ""), ("", " "), ("", "\n")]),
)
_any_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40),
    st.text(max_size=12),
    _padded_numbers,
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(FIELDS)), value=_any_value)
def test_any_value_is_refused_by_key_without_a_traceback_or_kept_within_the_spec(key, value):
    try:
        cfg, _ = config_from_dict({**REQUIRED, key: value})
    except ConfigError as exc:
        assert_named_without_traceback(exc, key)
        return
    assert_allowed(FIELDS[key], getattr(cfg, key))  # accepted: a value the setting allows


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=12))
def test_any_resolution_or_output_name_is_refused_by_key_or_kept_as_written(text):
    for key in ("max_resolution", "output_name"):
        try:
            cfg, _ = config_from_dict({**REQUIRED, key: text})
        except ConfigError as exc:
            assert_named_without_traceback(exc, key)
            continue
        assert getattr(cfg, key) == text  # accepted: never silently changed
