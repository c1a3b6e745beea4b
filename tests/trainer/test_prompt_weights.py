"""(word:1.3) weights in captions (weighted_captions) and in sample prompts."""

import pytest
import torch

from tests.helpers import make_toy_dataset, write_preset
from trainer.config import config_from_dict
from trainer.text.conditioning import TextConditioner, chunk_ids, tokenize
from trainer.text.weights import DOWN, UP, apply_weights, parse_weighted, plain_text, weighted_ids


@pytest.mark.parametrize(
    "text, parts",
    [
        ("a (b:1.5) [c]", [("a ", 1.0), ("b", 1.5), (" ", 1.0), ("c", DOWN)]),
        ("((x))", [("x", UP * UP)]),
        ("(a (b:2))", [("a ", UP), ("b", 2 * UP)]),
        (r"\(not weighted\)", [("(not weighted)", 1.0)]),
        ("(unclosed", [("unclosed", UP)]),
        ("ratio 16:9, [[bg]]", [("ratio 16:9, ", 1.0), ("bg", DOWN * DOWN)]),
        ("", [("", 1.0)]),
    ],
)
def test_the_a1111_weight_syntax(text, parts):
    got = parse_weighted(text)
    assert [t for t, _ in got] == [t for t, _ in parts]
    assert [w for _, w in got] == pytest.approx([w for _, w in parts])


def test_plain_text_drops_only_the_syntax():
    assert plain_text("1girl, (red hair:1.3), [simple background]") == "1girl, red hair, simple background"


def test_a_caption_without_weights_tokenizes_exactly_as_before(models):
    tok = models.tokenizers[0]
    captions = ["1girl, red hair, smile", "a photo of a cat " * 30]
    for length in (75, 150):
        ids, weights = weighted_ids(tok, captions, length)
        assert torch.equal(chunk_ids(tok, ids, length), tokenize(tok, captions, length))
        assert bool((weights == 1).all())
    plain = TextConditioner(models.tokenizers, models.text_encoders, arch="sd1", max_token_length=150)
    weighted = TextConditioner(
        models.tokenizers, models.text_encoders, arch="sd1", max_token_length=150, weighted=True
    )
    with torch.no_grad():
        assert torch.equal(plain.encode(captions)[0], weighted.encode(captions)[0])


def test_a_weight_scales_its_tokens_and_keeps_the_overall_size(models):
    tok = models.tokenizers[0]
    ids, weights = weighted_ids(tok, ["a (red:1.5) cat"], 75)
    red = tok("red", add_special_tokens=False).input_ids[0]
    position = ids[0].tolist().index(red)
    assert weights[0, position] == pytest.approx(1.5)
    assert weights[0, position - 1] == 1 and weights[0, position + 1] == 1
    cond = TextConditioner(models.tokenizers, models.text_encoders, arch="sd1", weighted=True)
    plain = TextConditioner(models.tokenizers, models.text_encoders, arch="sd1")
    with torch.no_grad():
        w = cond.encode(["a (red:1.5) cat"])[0]
        p = plain.encode(["a red cat"])[0]  # the same tokens, unweighted
    assert w.pow(2).mean().item() == pytest.approx(p.pow(2).mean().item(), rel=1e-4)
    ratio = (w[0, position] / p[0, position]).mean().item()
    other = (w[0, position + 1] / p[0, position + 1]).mean().item()
    assert ratio / other == pytest.approx(1.5, rel=1e-3)


def test_apply_weights_changes_nothing_when_every_weight_is_one():
    hidden = torch.randn(2, 77, 8)
    assert apply_weights(hidden, torch.ones(2, 77)) is hidden


def test_weighted_captions_loads_from_kohya_and_trains(tiny_model, tmp_path):
    from trainer.__main__ import main

    cfg, warnings = config_from_dict(
        {
            "pretrained_model_name_or_path": "m",
            "train_data_dir": "d",
            "output_dir": "o",
            "weighted_captions": True,
        }
    )
    assert cfg.weighted_captions and not any("not used" in w for w in warnings)
    data = make_toy_dataset(tmp_path / "data", n=2)
    for caption in (data / "1_toy").glob("*.txt"):
        caption.write_text("toy, (red square:1.4), [plain background]", encoding="utf-8")
    preset = write_preset(
        tmp_path, tiny_model("sd15"), data, max_train_steps=2, epoch=1, weighted_captions=True
    )
    assert main(["--config", str(preset)]) == 0
    assert (tmp_path / "out" / "toy.safetensors").is_file()


def test_sdxl_weights_both_text_encoders_and_keeps_the_pooled_output(tiny_model):
    from trainer.models import load_models

    m = load_models(
        str(tiny_model("sdxl")),
        v2=False,
        v_parameterization=False,
        sdxl=True,
        dtype=torch.float32,
        vae_path=None,
    )
    plain = TextConditioner(m.tokenizers, m.text_encoders, arch="sdxl")
    weighted = TextConditioner(m.tokenizers, m.text_encoders, arch="sdxl", weighted=True)
    with torch.no_grad():
        h0, p0 = plain.encode(["a red cat"])
        h1, p1 = weighted.encode(["a red cat"])
        h2, p2 = weighted.encode(["a (red:1.5) cat"])
    assert torch.equal(h0, h1) and torch.equal(p0, p1)  # no weights: exactly as before
    assert not torch.equal(h0, h2) and torch.equal(p0, p2)  # weighted tokens; pooled unchanged
