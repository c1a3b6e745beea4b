"""caption: tags above the threshold from a WD14-style ONNX tagger (built here, offline),
existing captions kept unless --overwrite, the prefix, the tag summary, a Hugging Face id
downloaded on first use (a local fake Hub), and transformers captioners (tiny BLIP and Florence-2)."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.hub_server import FakeHub, repo_from_folder
from tests.trainer.caption_models import write_tiny_blip, write_tiny_florence2, write_tiny_tagger
from trainer.tools.__main__ import main
from trainer.tools.caption import caption_images
from trainer.tools.lora_io import ToolError


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    return write_tiny_tagger(tmp_path_factory.mktemp("tagger") / "wd14")


def _dataset(folder):
    folder.mkdir(parents=True)
    Image.new("RGB", (16, 16), (250, 10, 10)).save(folder / "red.png")
    Image.new("RGB", (24, 16), (10, 10, 250)).save(folder / "blue.jpg")
    Image.new("RGB", (16, 16), (10, 250, 10)).save(folder / "green.png")
    (folder / "green.txt").write_text("my own caption", encoding="utf-8")
    return folder


def test_wd14_writes_tags_above_the_threshold_and_keeps_captions(tagger, tmp_path, capsys):
    data = _dataset(tmp_path / "10_mychar")
    code = main(["caption", "--images", str(data), "--model", str(tagger), "--prefix", "mychar, ",
                 "--remove_underscore"])  # fmt: skip
    assert code == 0
    assert (data / "red.txt").read_text(encoding="utf-8") == "mychar, mychar name, red"
    assert (data / "blue.txt").read_text(encoding="utf-8") == "mychar, mychar name, blue"
    assert (data / "green.txt").read_text(encoding="utf-8") == "my own caption"  # kept
    out = capsys.readouterr().out
    assert "captioned 2 of 3 images" in out and "kept 1 existing" in out
    assert "mychar (2)" in out and "my own caption (1)" in out  # the tag summary

    result = caption_images(data, model=str(tagger), overwrite=True, threshold=0.95, progress=False)
    assert (data / "green.txt").read_text(encoding="utf-8") == "green"  # 0.9 < 0.95: no character tag
    assert result.facts["tag_frequency"] == {"red": 1, "blue": 1, "green": 1}


def test_a_hub_id_is_downloaded_on_first_use_only(tagger, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    hub = FakeHub({"someone/tiny-tagger": repo_from_folder(tagger)}).start()
    try:
        data = _dataset(tmp_path / "d")
        caption_images(data, model="someone/tiny-tagger", endpoint=hub.url, progress=False)
        assert (data / "red.txt").read_text(encoding="utf-8") == "mychar_name, red"
        fetched = len(hub.requests)
        caption_images(data, model="someone/tiny-tagger", endpoint=hub.url, overwrite=True, progress=False)
        assert len(hub.requests) == fetched  # from the cache the second time
    finally:
        hub.stop()


@pytest.mark.parametrize(
    ("method", "write"), [("blip", write_tiny_blip), ("florence2", write_tiny_florence2)]
)
def test_transformers_captioners_write_a_sentence_per_image(tmp_path, method, write):
    model = write(tmp_path / method)
    data = _dataset(tmp_path / "d")
    result = caption_images(
        data, method=method, model=str(model), prefix="mychar, ", max_length=5, progress=False
    )
    assert result.facts["captioned"] == 2
    for name in ("red", "blue"):
        assert (data / f"{name}.txt").read_text(encoding="utf-8").startswith("mychar, ")


def test_bad_options_are_named(tagger, tmp_path):
    with pytest.raises(ToolError, match="--images"):
        caption_images(tmp_path / "missing", model=str(tagger))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToolError, match="holds no images"):
        caption_images(tmp_path / "empty", model=str(tagger))
    with pytest.raises(ToolError, match="--threshold"):
        caption_images(_dataset(tmp_path / "d"), model=str(tagger), threshold=0)
    with pytest.raises(ToolError, match="--model"):
        caption_images(tmp_path / "d", model=str(tmp_path / "empty"))
