"""cache_latents_to_disk: one .npz per image, reused across runs, never stale."""

import json
import os
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import make_toy_dataset, write_preset
from trainer.config import config_from_dict
from trainer.data.dataset import TrainDataset
from trainer.data.latent_cache import (
    build_latent_cache,
    cache_path,
    encode_latents,
    read_cache_file,
    vae_fingerprint,
)
from trainer.data.resolved import resolve_dataset

SCALE = 0.18215


@pytest.fixture(scope="module")
def vae(tiny_model):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(tiny_model("sd15") / "vae").eval()


class CountingEncoder:
    """The VAE's deterministic latent (the mode), counting the images it encodes."""

    def __init__(self, vae):
        self.vae, self.images = vae, 0

    @torch.no_grad()
    def __call__(self, images, seeds=None):
        self.images += images.shape[0]
        return self.vae.encode(images).latent_dist.mode() * SCALE


class SamplingEncoder:
    """The trainer's encoder (a sample of the VAE's distribution), recording each call's batch."""

    def __init__(self, vae):
        self.encode = partial(encode_latents, vae, latent_scale=SCALE, device="cpu")
        self.calls: list[tuple[int, tuple[int, ...]]] = []

    @torch.no_grad()
    def __call__(self, images, seeds):
        self.calls.append((images.shape[0], tuple(images.shape[2:])))
        return self.encode(images, seeds)


def dataset_of(data, resolution="64,64", flip=False):
    cfg, _ = config_from_dict(
        {
            "pretrained_model_name_or_path": "unused",
            "train_data_dir": str(data),
            "output_dir": str(data.parent / "out"),
            "max_resolution": resolution,
            "min_bucket_reso": 64,
            "max_bucket_reso": 256,
            "bucket_no_upscale": False,
            "mixed_precision": "no",
        }
    )
    p = resolve_dataset(cfg)
    return TrainDataset(p.scan, None, p.choices, flip_aug=flip)


def build(ds, encoder, vae_id, flip=False, warnings=None):
    return build_latent_cache(
        ds,
        encoder,
        latent_scale=SCALE,
        flip=flip,
        to_disk=True,
        vae_id=vae_id,
        warn=(warnings.append if warnings is not None else lambda m: None),
    )


@pytest.fixture
def data(tmp_path):
    return make_toy_dataset(tmp_path / "data", n=2, size=64)


def test_a_cache_file_is_written_per_image_then_reused(data, vae):
    vae_id = vae_fingerprint(vae)
    encoder = CountingEncoder(vae)
    first = build(dataset_of(data), encoder, vae_id)
    assert encoder.images == 2
    files = sorted(p.name for p in (data / "1_toy").glob("*.npz"))
    assert files == ["img0.npz", "img1.npz"]  # Kohya's name: <image stem>.npz beside the image
    with np.load(data / "1_toy" / "img0.npz", allow_pickle=False) as npz:  # no pickle inside
        assert npz["latents"].shape == (4, 8, 8) and npz["latents"].dtype == np.float32
        assert np.allclose(npz["latents"] * SCALE, first[(0, False)][0].numpy(), atol=1e-6)
        assert list(npz["original_size"]) == [64, 64]

    again = CountingEncoder(vae)
    second = build(dataset_of(data), again, vae_id)
    assert again.images == 0  # nothing encoded: the next run reuses the files
    for key, (latent, time_ids) in first.items():
        assert torch.allclose(second[key][0], latent, atol=1e-6)
        assert torch.equal(second[key][1], time_ids)


def test_an_edited_image_is_rebuilt_even_with_its_old_date_and_size(data, vae):
    vae_id = vae_fingerprint(vae)
    before = build(dataset_of(data), CountingEncoder(vae), vae_id)
    path = data / "1_toy" / "img1.png"
    stat = path.stat()
    img = Image.open(path).convert("RGB")
    img.paste((20, 20, 220), (0, 0, 64, 20))  # a blue band: another picture
    img.save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # copy tools keep the old date
    encoder = CountingEncoder(vae)
    after = build(dataset_of(data), encoder, vae_id)
    assert encoder.images == 1  # only the edited image
    assert torch.allclose(after[(0, False)][0], before[(0, False)][0], atol=1e-6)
    assert not torch.allclose(after[(1, False)][0], before[(1, False)][0], atol=1e-3)
    fresh = CountingEncoder(vae)(dataset_of(data).load_unique(1)["image"][None])[0]
    assert torch.allclose(after[(1, False)][0], fresh, atol=1e-5)  # the new picture's latent


def test_a_new_bucket_rebuilds(tmp_path, vae):
    data = make_toy_dataset(tmp_path / "data", n=1, size=128)
    vae_id = vae_fingerprint(vae)
    build(dataset_of(data, "64,64"), CountingEncoder(vae), vae_id)
    encoder = CountingEncoder(vae)
    cache = build(dataset_of(data, "128,128"), encoder, vae_id)
    assert encoder.images == 1 and cache[(0, False)][0].shape == (4, 16, 16)


def test_flip_aug_caches_the_mirrored_image_and_needs_it_on_disk(data, vae):
    vae_id = vae_fingerprint(vae)
    build(dataset_of(data), CountingEncoder(vae), vae_id)  # without flip
    encoder = CountingEncoder(vae)
    ds = dataset_of(data, flip=True)
    cache = build(ds, encoder, vae_id, flip=True)
    assert encoder.images == 4  # rebuilt: the files had no mirrored latent
    mirrored = ds.load_unique(0, flip=True)["image"]
    assert torch.equal(mirrored, ds.load_unique(0)["image"].flip(-1))
    assert torch.allclose(cache[(0, True)][0], encoder(mirrored[None])[0], atol=1e-5)
    assert not torch.allclose(cache[(0, True)][0], cache[(0, False)][0], atol=1e-3)
    assert cache[(0, True)][1][3] == 0  # SDXL crop-left of the mirrored (uncropped) image
    reuse = CountingEncoder(vae)
    build(dataset_of(data, flip=True), reuse, vae_id, flip=True)
    build(dataset_of(data), reuse, vae_id)  # a file with both latents serves a run without flip
    assert reuse.images == 0


def test_another_vae_rebuilds(data, vae):
    build(dataset_of(data), CountingEncoder(vae), vae_fingerprint(vae))
    other = type(vae).from_config(vae.config).eval()  # same shape, other weights
    assert vae_fingerprint(other) != vae_fingerprint(vae)
    assert vae_fingerprint(vae) == vae_fingerprint(vae)
    encoder = CountingEncoder(other)
    build(dataset_of(data), encoder, vae_fingerprint(other))
    assert encoder.images == 2


def test_damaged_foreign_or_pickled_files_are_rebuilt_not_trusted(data, vae):
    vae_id = vae_fingerprint(vae)
    folder = data / "1_toy"
    (folder / "img0.npz").write_bytes(b"garbage")
    np.savez(folder / "img1.npz", latents=np.array([object()], dtype=object))  # needs pickle
    encoder = CountingEncoder(vae)
    build(dataset_of(data), encoder, vae_id)
    assert encoder.images == 2
    with np.load(folder / "img1.npz", allow_pickle=False) as npz:
        assert json.loads(str(npz["cache_key"]))["vae"] == vae_id
    key = {"format": 0}
    assert read_cache_file(cache_path(folder / "img0.png"), key, (False,)) is None


def test_an_unwritable_folder_keeps_the_latents_in_memory_with_a_warning(data, vae, monkeypatch):
    import trainer.data.latent_cache as lc

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lc, "write_cache_file", refuse)
    warnings = []
    cache = build(dataset_of(data), CountingEncoder(vae), vae_fingerprint(vae), warnings=warnings)
    assert len(cache) == 2 and len(warnings) == 1 and "in memory" in warnings[0]
    assert not list((data / "1_toy").glob("*.npz"))


def test_training_runs_write_then_reuse_the_disk_cache(tiny_model, tmp_path):
    from trainer.presets import load_preset
    from trainer.run.train import train_with_events

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        max_train_steps=1,
        epoch=1,
        cache_latents=False,
        cache_latents_to_disk=True,
        flip_aug=True,
    )
    cfg, _ = load_preset(preset)
    logs = []

    def run():
        logs.clear()
        assert train_with_events(cfg, lambda e: logs.append(e.data.get("message", ""))) == 0

    run()  # to_disk implies caching, as in sd-scripts
    assert sorted(p.name for p in (data / "1_toy").glob("*.npz")) == ["img0.npz", "img1.npz"]
    assert "Latent cache: 0 image(s) reused from disk, 2 written." in logs
    run()
    assert "Latent cache: 2 image(s) reused from disk, 0 written." in logs


def mixed_sizes(tmp_path):
    """Five square and two wide images: two buckets."""
    data = make_toy_dataset(tmp_path / "data", n=5, size=64)
    for i in range(2):
        Image.new("RGB", (192, 64), (30 * i, 90, 200)).save(data / "1_toy" / f"wide{i}.png")
        (data / "1_toy" / f"wide{i}.txt").write_text("toy, wide", encoding="utf-8")
    return data


@pytest.mark.parametrize("to_disk", [False, True])
def test_vae_batch_size_encodes_same_size_images_together_with_the_same_latents(tmp_path, vae, to_disk):
    data = mixed_sizes(tmp_path)
    ds = dataset_of(data, resolution="128,128", flip=True)
    assert len({choice.bucket for _, choice in ds.images}) == 2

    def cache_with(batch_size):
        for f in (data / "1_toy").glob("*.npz"):
            f.unlink()
        encoder = SamplingEncoder(vae)
        torch.manual_seed(batch_size)  # the global generator must not matter
        cache = build_latent_cache(
            ds,
            encoder,
            latent_scale=SCALE,
            flip=True,
            to_disk=to_disk,
            vae_id="v",
            batch_size=batch_size,
            seed=7,
        )
        return cache, encoder.calls

    one, one_calls = cache_with(0)  # 0 = Kohya's default: one image per VAE call
    batched, calls = cache_with(3)
    assert {n for n, _ in one_calls} == {1} and len(one_calls) == 14  # 7 images, each mirrored
    assert max(n for n, _ in calls) == 3 and sum(n for n, _ in calls) == 14 and len(calls) < 14
    assert batched.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(batched[key][0], one[key][0], atol=1e-5, rtol=0)  # float rounding
        assert torch.equal(batched[key][1], one[key][1])
    mode = SCALE * vae.encode(ds.load_unique(0)["image"][None]).latent_dist.mode()[0]
    assert not torch.allclose(one[(0, False)][0], mode, atol=1e-3)  # a sample, not the mode
    if to_disk:
        reuse = CountingEncoder(vae)
        build_latent_cache(ds, reuse, latent_scale=SCALE, flip=True, to_disk=True, vae_id="v", batch_size=3)
        assert reuse.images == 0  # every file was written with both latents
