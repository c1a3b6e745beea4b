"""Hugging Face ids: only the files training loads are fetched, resumably, with the token kept secret.

Downloads come from tests/hub_server.py, a Hub on 127.0.0.1 serving the tiny model in the
Hub's layout; nothing reaches the real Hugging Face.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub_server import FakeHub, repo_from_folder
from trainer import api
from trainer.models import ModelLoadError, detect_model
from trainer.models.hub import DownloadError, cached_folder, download_pipeline, pipeline_files

SD15_LISTING = {
    ".gitattributes": 1,
    "README.md": 1,
    "model_index.json": 1,
    "v1-5-pruned.safetensors": 7_700_000_000,
    "v1-5-pruned-emaonly.ckpt": 4_270_000_000,
    "feature_extractor/preprocessor_config.json": 1,
    "safety_checker/config.json": 1,
    "safety_checker/model.safetensors": 1_200_000_000,
    "scheduler/scheduler_config.json": 1,
    "text_encoder/config.json": 1,
    "text_encoder/model.safetensors": 492_000_000,
    "text_encoder/model.fp16.safetensors": 246_000_000,
    "text_encoder/pytorch_model.bin": 492_000_000,
    "text_encoder/flax_model.msgpack": 492_000_000,
    "tokenizer/merges.txt": 1,
    "tokenizer/special_tokens_map.json": 1,
    "tokenizer/tokenizer_config.json": 1,
    "tokenizer/vocab.json": 1,
    "unet/config.json": 1,
    "unet/diffusion_pytorch_model.safetensors": 3_440_000_000,
    "unet/diffusion_pytorch_model.fp16.safetensors": 1_720_000_000,
    "unet/diffusion_pytorch_model.non_ema.bin": 3_440_000_000,
    "vae/config.json": 1,
    "vae/diffusion_pytorch_model.safetensors": 335_000_000,
    "vae_encoder/model.onnx": 1,
}


def test_only_what_training_loads_is_chosen_from_a_real_sd15_listing():
    chosen = pipeline_files(SD15_LISTING)
    assert sorted(chosen) == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    assert sum(chosen.values()) < 4.3e9  # not the 22 GB of the whole repository


def test_shards_and_bin_fallback_and_refusals():
    sharded = {
        **{k: v for k, v in SD15_LISTING.items() if not k.startswith("unet/")},
        "unet/config.json": 1,
        "unet/diffusion_pytorch_model.safetensors.index.json": 1,
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors": 5,
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors": 5,
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors": 3,
    }
    unet = sorted(p for p in pipeline_files(sharded) if p.startswith("unet/"))
    assert unet == [
        "unet/config.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
    ]
    old = {k: v for k, v in SD15_LISTING.items() if k != "text_encoder/model.safetensors"}
    assert "text_encoder/pytorch_model.bin" in pipeline_files(old)
    fp16_only = {k: v for k, v in SD15_LISTING.items() if k != "unet/diffusion_pytorch_model.safetensors"}
    fp16_only.pop("unet/diffusion_pytorch_model.non_ema.bin")
    with pytest.raises(DownloadError, match="unet has only fp16 variant weights"):
        pipeline_files(fp16_only)
    with pytest.raises(DownloadError, match="no model_index.json"):
        pipeline_files({"model.safetensors": 10})


@pytest.fixture
def hub(tiny_model):
    files = repo_from_folder(tiny_model("sd15"))
    files["tiny-pruned.safetensors"] = b"x" * 5000  # a root single file: never fetched
    files["safety_checker/model.safetensors"] = b"y" * 3000
    files["safety_checker/config.json"] = b"{}"
    server = FakeHub({"demo/tiny-sd15": files}).start()
    yield server
    server.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    folder = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))
    return folder


def download(hub: FakeHub, cache: Path, **kwargs):
    seen = []
    folder = download_pipeline(
        "demo/tiny-sd15", cache_dir=cache, endpoint=hub.url, on_progress=seen.append, poll_s=0.05, **kwargs
    )
    return folder, seen


def test_a_hub_id_downloads_into_the_cache_and_then_trains_from_it(hub, cache):
    assert api.model_needs_download("demo/tiny-sd15")
    folder, seen = download(hub, cache)
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not (folder / "tiny-pruned.safetensors").exists() and not (folder / "safety_checker").exists()
    assert not hub.gets("tiny-pruned.safetensors") and not hub.gets("safety_checker/model.safetensors")
    assert seen[-1].fraction == 1.0 and seen[-1].files_done == seen[-1].files_total
    assert cached_folder("demo/tiny-sd15") == folder
    info = detect_model("demo/tiny-sd15")
    assert info.arch == "sd1" and "Hugging Face cache" in info.message
    assert not api.model_needs_download("demo/tiny-sd15")
    assert not api.model_needs_download("demo/model.safetensors")  # a file name, not an id


def test_a_dropped_connection_resumes_from_its_last_byte(hub, cache, monkeypatch):
    import huggingface_hub.constants

    # huggingface_hub writes 10 MB chunks; the tiny U-Net (6 MB) needs smaller ones to be cut
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    weights = "unet/diffusion_pytorch_model.safetensors"
    hub.drop_once = {weights}
    folder, _ = download(hub, cache)
    gets = hub.gets(weights)
    assert len(gets) == 2 and gets[0][2] == "" and gets[1][2].startswith("bytes=")
    size = len(hub.repos["demo/tiny-sd15"][weights])
    resumed_at = int(gets[1][2][len("bytes=") :].rstrip("-"))
    assert size // 2 - 64 * 1024 <= resumed_at <= size // 2  # what arrived is not fetched again
    assert (folder / weights).read_bytes() == hub.repos["demo/tiny-sd15"][weights]


def test_an_interrupted_download_fetches_only_what_is_missing_the_next_time(hub, cache):
    hub.fail = {"vae/diffusion_pytorch_model.safetensors"}
    with pytest.raises(DownloadError, match="Press Start again to resume"):
        download(hub, cache)
    assert api.model_needs_download("demo/tiny-sd15")
    with pytest.raises(ModelLoadError, match=r"only partly downloaded \(no weights yet for vae\)"):
        detect_model("demo/tiny-sd15")
    done_before = len(hub.gets("text_encoder/model.safetensors"))
    assert done_before == 1
    hub.fail = set()
    folder, _ = download(hub, cache)
    assert len(hub.gets("text_encoder/model.safetensors")) == 1  # not fetched again
    assert len(hub.gets("vae/diffusion_pytorch_model.safetensors")) == 2
    assert detect_model("demo/tiny-sd15").arch == "sd1" and folder.is_dir()


def test_a_private_model_needs_the_token_which_is_never_written_or_shown(hub, cache, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    secret = "hf_abcdefghijklmnopqrstuvwxyz0123"
    hub.token = secret
    with pytest.raises(DownloadError, match="private: give your token") as info:
        download(hub, cache, token="hf_wrongwrongwrongwrongwrong0000")
    assert "hf_wrong" not in str(info.value)
    folder, _ = download(hub, cache, token=secret)
    assert detect_model("demo/tiny-sd15").arch == "sd1" and folder.is_dir()
    assert {r[3] for r in hub.requests if "/resolve/" in r[1]} == {f"Bearer {secret}"}
    for path in cache.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_an_unknown_id_says_so(hub, cache):
    with pytest.raises(DownloadError, match="neither a local folder/file nor a model on Hugging Face"):
        download_pipeline("someone/nothing-here", cache_dir=cache, endpoint=hub.url)
    with pytest.raises(DownloadError, match="not a Hugging Face id"):
        download_pipeline("not an id", cache_dir=cache, endpoint=hub.url)
