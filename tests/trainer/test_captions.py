"""Caption processing in Kohya's order (docs/ANCHORS.md section 2)."""

import random
from types import SimpleNamespace

from tests.helpers import DataCfg
from trainer.data.captions import CaptionOptions, process_caption, tag_frequency

CAPTION = "mychar, red hair, smile, outdoors, blue sky, tree, looking at viewer"


def test_no_options_leaves_the_caption_alone():
    assert process_caption(CAPTION, rng=random.Random(0)) == CAPTION


def test_prefix_and_suffix_are_joined_with_a_space():
    assert process_caption("red hair", prefix="mychar,", rng=random.Random(0)) == "mychar, red hair"
    assert (
        process_caption("red hair,", suffix="best quality", rng=random.Random(0)) == "red hair, best quality"
    )
    assert process_caption("", prefix="mychar", rng=random.Random(0)) == "mychar"


def test_keep_tokens_stay_in_place_while_the_rest_are_shuffled():
    rng = random.Random(1234)
    orders = set()
    for _ in range(50):
        tags = process_caption(CAPTION, shuffle=True, keep_tokens=2, rng=rng).split(", ")
        assert tags[:2] == ["mychar", "red hair"]
        assert sorted(tags) == sorted(CAPTION.split(", "))
        orders.add(tuple(tags[2:]))
    assert len(orders) > 10


def test_prefix_takes_part_in_keep_tokens():
    rng = random.Random(3)
    for _ in range(20):
        out = process_caption("smile, tree, sky", prefix="mychar,", shuffle=True, keep_tokens=1, rng=rng)
        assert out.startswith("mychar, ")


def test_full_tag_dropout_keeps_only_the_kept_tags():
    rng = random.Random(0)
    for _ in range(10):
        assert process_caption(CAPTION, keep_tokens=1, tag_dropout_rate=1.0, rng=rng) == "mychar"


def test_partial_tag_dropout_drops_some_tags():
    rng = random.Random(5)
    lengths = {len(process_caption(CAPTION, tag_dropout_rate=0.5, rng=rng).split(", ")) for _ in range(50)}
    assert min(lengths) < 7 and max(lengths) > 1


def test_whole_caption_dropout_every_n_epochs():
    rng = random.Random(0)
    results = {
        epoch: process_caption(CAPTION, dropout_every_n_epochs=3, epoch=epoch, rng=rng)
        for epoch in range(1, 10)
    }
    assert [e for e, c in results.items() if c == ""] == [3, 6, 9]
    assert results[1] == CAPTION


def test_whole_caption_dropout_rate_wins_over_shuffle():
    rng = random.Random(0)
    outs = [process_caption(CAPTION, dropout_rate=0.5, shuffle=True, prefix="x", rng=rng) for _ in range(200)]
    dropped = outs.count("")
    assert 60 < dropped < 140
    assert process_caption(CAPTION, dropout_rate=1.0, prefix="x", rng=rng) == ""


def test_same_seed_same_caption():
    a = process_caption(CAPTION, shuffle=True, tag_dropout_rate=0.3, rng=random.Random(7))
    b = process_caption(CAPTION, shuffle=True, tag_dropout_rate=0.3, rng=random.Random(7))
    assert a == b


def test_empty_tags_are_left_out_when_tags_are_processed():
    out = process_caption("a,, b ,", shuffle=True, keep_tokens=3, rng=random.Random(0))
    assert out == "a, b"


def test_caption_options_from_a_config_with_kohya_names():
    cfg = DataCfg(shuffle_caption=True, keep_tokens=1, caption_dropout_every_n_epochs=2)
    opts = CaptionOptions.from_config(cfg)
    assert opts.shuffle and opts.keep_tokens == 1 and opts.prefix == ""
    assert opts.apply(CAPTION, epoch=2, rng=random.Random(0)) == ""
    assert opts.apply(CAPTION, epoch=1, rng=random.Random(0)).startswith("mychar, ")


def test_tag_frequency_counts_each_image_once_per_subset():
    items = [
        SimpleNamespace(subset="50_mychar", caption="mychar, smile", repeats=50),
        SimpleNamespace(subset="50_mychar", caption="mychar, tree", repeats=50),
        SimpleNamespace(subset="1_person", caption="person", repeats=1),
    ]
    assert tag_frequency(items) == {
        "50_mychar": {"mychar": 2, "smile": 1, "tree": 1},
        "1_person": {"person": 1},
    }


def test_a_keep_tokens_separator_fixes_the_head_and_the_tail_and_disappears():
    caption = "mychar, red hair ||| smile, outdoors, blue sky, tree ||| best quality"
    rng = random.Random(5)
    orders = set()
    for _ in range(40):
        tags = process_caption(
            caption, shuffle=True, keep_tokens=5, keep_tokens_separator="|||", rng=rng
        ).split(", ")
        assert tags[:2] == ["mychar", "red hair"] and tags[-1] == "best quality"  # keep_tokens unused
        assert sorted(tags[2:-1]) == ["blue sky", "outdoors", "smile", "tree"]
        orders.add(tuple(tags[2:-1]))
    assert len(orders) > 5
    # without shuffling the separator still never reaches the text encoder
    assert process_caption("a, b ||| c", keep_tokens_separator="|||", rng=rng) == "a, b, c"
    # a caption without the separator keeps keep_tokens
    tags = process_caption(CAPTION, shuffle=True, keep_tokens=1, keep_tokens_separator="|||", rng=rng).split(
        ", "
    )
    assert tags[0] == "mychar"


def test_a_secondary_separator_moves_words_as_one_tag():
    rng = random.Random(9)
    for _ in range(20):
        text = process_caption(
            "mychar, red hair::long hair, smile, tree",
            shuffle=True,
            keep_tokens=1,
            secondary_separator="::",
            rng=rng,
        )
        assert "red hair, long hair" in text and "::" not in text
    assert process_caption("a::b", secondary_separator="::", rng=rng) == "a, b"


def test_separators_come_from_kohya_additional_parameters():
    from trainer.config import config_from_dict

    cfg, _ = config_from_dict(
        {
            "pretrained_model_name_or_path": "m",
            "train_data_dir": "d",
            "output_dir": "o",
            "shuffle_caption": True,
            "additional_parameters": '--keep_tokens_separator "|||"',
        }
    )
    options = CaptionOptions.from_config(cfg)
    assert options.keep_tokens_separator == "|||"
    assert options.apply("x ||| y, z", epoch=1, rng=random.Random(0)).startswith("x, ")


def test_wildcards_pick_a_line_and_a_choice_and_keep_escaped_braces():
    from trainer.data.captions import pick_wildcards

    rng = random.Random(11)
    lines = ("mychar, {red|blue} dress", "mychar, smiling {{text}}")
    seen = {pick_wildcards(lines[0], lines, rng) for _ in range(60)}
    assert seen == {"mychar, red dress", "mychar, blue dress", "mychar, smiling {text}"}
    options = CaptionOptions(wildcard=True, prefix="photo,")
    assert options.apply("a {b|b} c", epoch=1, rng=rng) == "photo, a b c"  # one line: its choices
    assert CaptionOptions().apply("a {b|c}", epoch=1, rng=rng) == "a {b|c}"  # off: as written


def test_a_multi_line_caption_file_trains_every_line_with_wildcards_on(tmp_path):
    from PIL import Image

    from trainer.data.dataset import TrainDataset
    from trainer.data.resolved import resolve_dataset

    (tmp_path / "3_x").mkdir()
    Image.new("RGB", (128, 128)).save(tmp_path / "3_x" / "a.png")
    (tmp_path / "3_x" / "a.txt").write_text("first line\n\nsecond line\nthird {one|two}\n", encoding="utf-8")
    p = resolve_dataset(DataCfg(train_data_dir=str(tmp_path)))
    assert p.scan.items[0].caption == "first line"
    off = TrainDataset(p.scan, None, p.choices)
    assert {off.caption(i, e) for i in range(3) for e in range(1, 5)} == {"first line"}
    on = TrainDataset(p.scan, None, p.choices, captions=CaptionOptions(wildcard=True), seed=1)
    seen = {on.caption(i, e) for i in range(3) for e in range(1, 30)}
    assert seen == {"first line", "second line", "third one", "third two"}
