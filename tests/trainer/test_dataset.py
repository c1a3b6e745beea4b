"""Batches per bucket, image tensors, augmentation and failure handling."""

from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from tests.helpers import DataCfg
from trainer.data.captions import CaptionOptions
from trainer.data.dataset import BucketBatcher, EpochBatchSampler, TrainDataset, collate
from trainer.data.images import load_rgb
from trainer.data.resolved import resolve_dataset

# Small buckets: the images below are 64-832 pixels.
Cfg = DataCfg


ENTRIES = (
    [(i, (512, 512)) for i in range(7)]
    + [(i, (640, 384)) for i in range(7, 12)]
    + [(i, (256, 832)) for i in range(12, 13)]
)


def batches_bucket(batch):
    return {dict(ENTRIES)[i] for i in batch}


def test_batches_never_mix_buckets_and_cover_every_entry_once():
    batcher = BucketBatcher(ENTRIES, batch_size=3, seed=42)
    for epoch in (1, 2, 3):
        batches = batcher.epoch_batches(epoch)
        assert all(len(batches_bucket(b)) == 1 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(13))
        assert len(batches) == len(batcher) == 3 + 2 + 1
        assert all(1 <= len(b) <= 3 for b in batches)


def test_batches_are_reproducible_and_change_per_epoch():
    a = BucketBatcher(ENTRIES, 2, seed=7)
    b = BucketBatcher(ENTRIES, 2, seed=7)
    assert a.epoch_batches(1) == b.epoch_batches(1)
    assert a.epoch_batches(1) != a.epoch_batches(2)
    assert a.epoch_batches(1) != BucketBatcher(ENTRIES, 2, seed=8).epoch_batches(1)


def make_dataset(root: Path) -> Path:
    """1_pic: a 256x256 red square with a blue right half, a 384x256 image, a caption."""
    (root / "2_pic").mkdir(parents=True)
    img = Image.new("RGB", (256, 256), (255, 0, 0))
    img.paste((0, 0, 255), (128, 0, 256, 256))
    img.save(root / "2_pic" / "halves.png")
    (root / "2_pic" / "halves.txt").write_text("pic, red, blue")
    Image.new("RGB", (384, 256), (0, 200, 0)).save(root / "2_pic" / "wide.png")
    return root


@pytest.fixture
def prepared(tmp_path):
    return resolve_dataset(Cfg(train_data_dir=str(make_dataset(tmp_path / "train"))))


def test_dataset_expands_repeats_but_keeps_one_image_each(prepared):
    ds = TrainDataset(prepared.scan, None, prepared.choices)
    assert len(ds) == 4 and len(ds.images) == 2
    assert Counter(e.image_index for e in ds.entries) == {0: 2, 1: 2}
    assert ds.num_train_images == 2 and ds.num_reg_images == 0


def test_load_image_is_bucket_sized_and_in_range(prepared):
    ds = TrainDataset(prepared.scan, None, prepared.choices)
    for i in range(len(ds)):
        out = ds.load_image(i, flip=False)
        bw, bh = ds.entries[i].choice.bucket
        assert out["image"].shape == (3, bh, bw) and out["image"].dtype == torch.float32
        assert out["image"].min() >= -1.0 and out["image"].max() <= 1.0
        assert out["target_size"] == (bh, bw)
        item = ds.entries[i].item
        assert out["original_size"] == (item.height, item.width)
    red_blue = ds.load_image(0, flip=False)["image"]
    assert red_blue[:, 0, 0].tolist() == [1.0, -1.0, -1.0]  # pure red at the left


def test_flip_mirrors_the_image(prepared):
    ds = TrainDataset(prepared.scan, None, prepared.choices)
    plain = ds.load_image(0, flip=False)["image"]
    flipped = ds.load_image(0, flip=True)["image"]
    assert torch.equal(flipped, plain.flip(-1))
    assert flipped[:, 0, 0].tolist() == [-1.0, -1.0, 1.0]  # blue now at the left


def test_crop_top_left_is_centred_and_mirrored_on_flip(tmp_path):
    (tmp_path / "1_x").mkdir()
    Image.new("RGB", (300, 256), (9, 9, 9)).save(tmp_path / "1_x" / "a.png")
    # 300x256 is under 320x320's area: it keeps its size, the bucket is cut to 256x256.
    p = resolve_dataset(Cfg(train_data_dir=str(tmp_path), max_resolution="320,320", bucket_no_upscale=True))
    ds = TrainDataset(p.scan, None, p.choices)
    assert ds.entries[0].choice.bucket == (256, 256)
    assert ds.load_image(0, flip=False)["crop_top_left"] == (0, 22)
    assert ds.load_image(0, flip=True)["crop_top_left"] == (0, 300 - 22 - 256)


def test_transparent_png_is_composited_on_white(tmp_path):
    (tmp_path / "1_x").mkdir()
    rgba = Image.new("RGBA", (256, 256), (255, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (0, 0, 128, 256))
    rgba.save(tmp_path / "1_x" / "clear.png")
    p = resolve_dataset(Cfg(train_data_dir=str(tmp_path)))
    image = TrainDataset(p.scan, None, p.choices).load_image(0, flip=False)["image"]
    assert image[:, 10, 200].tolist() == [1.0, 1.0, 1.0]  # transparent -> white
    assert image[:, 10, 10].tolist() == [-1.0, -1.0, -1.0]  # opaque black stays


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    import numpy as np

    arr = np.full((16, 16), 32768, dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    rgb = load_rgb(tmp_path / "g16.png")
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (128, 128, 128)


def test_broken_image_during_training_is_skipped_with_a_warning(prepared):
    warnings = []
    ds = TrainDataset(prepared.scan, None, prepared.choices, on_warning=warnings.append)
    broken = ds.images[1][0].path
    broken.write_bytes(b"gone")
    index = next(i for i, e in enumerate(ds.entries) if e.image_index == 1)
    assert ds.load_image(index, flip=False) is None
    assert ds.load_image(index, flip=False) is None
    assert len(warnings) == 1 and str(broken) in warnings[0]
    batch = collate([ds[0], ds[index]])
    assert batch["images"].shape[0] == 1  # the batch shrinks
    assert collate([ds[index]]) is None


def test_dataloader_batches_share_a_bucket(prepared):
    ds = TrainDataset(
        prepared.scan,
        None,
        prepared.choices,
        captions=CaptionOptions(shuffle=True, keep_tokens=1),
        flip_aug=True,
        seed=3,
    )
    sampler = EpochBatchSampler(BucketBatcher(ds.bucket_entries(), 2, seed=3))
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    seen = []
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        for batch in loader:
            assert batch["images"].ndim == 4 and batch["images"].shape[0] == 2
            assert batch["target_sizes"].shape == (2, 2)
            assert len(set(map(tuple, batch["target_sizes"].tolist()))) == 1
            seen += batch["indices"]
            for caption in batch["captions"]:
                assert caption in ("pic",) or caption.startswith("pic, ")
    assert sorted(seen) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_samples_are_reproducible_for_a_seed_and_epoch(prepared):
    opts = CaptionOptions(shuffle=True)
    a = TrainDataset(prepared.scan, None, prepared.choices, captions=opts, flip_aug=True, seed=5)
    b = TrainDataset(prepared.scan, None, prepared.choices, captions=opts, flip_aug=True, seed=5)
    for epoch in range(1, 6):
        for i in range(len(a)):
            assert a.caption(i, epoch) == b.caption(i, epoch)
            assert a.flip_for(i, epoch) == b.flip_for(i, epoch)
    flips = {a.flip_for(i, e) for i in range(len(a)) for e in range(1, 6)}
    assert flips == {True, False}


def test_reg_entries_round_robin_and_are_marked(tmp_path):
    train = make_dataset(tmp_path / "train")
    (tmp_path / "reg" / "1_person").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (256, 256), (i, i, i)).save(tmp_path / "reg" / "1_person" / f"{i}.png")
    p = resolve_dataset(Cfg(train_data_dir=str(train), reg_data_dir=str(tmp_path / "reg")))
    ds = TrainDataset(p.scan, p.reg_scan, p.choices, p.reg_choices)
    reg = [e for e in ds.entries if e.is_reg]
    assert len(reg) == 4 and len(ds) == 8
    assert Counter(e.item.path.name for e in reg) == {"0.png": 2, "1.png": 1, "2.png": 1}
    assert ds.num_reg_images == 3
    assert collate([ds[i] for i in range(len(ds)) if ds.entries[i].is_reg][:1])["is_reg"].all()


def test_caption_only_samples_for_cached_latents(prepared):
    ds = TrainDataset(prepared.scan, None, prepared.choices)
    batch = collate([ds.sample(i, epoch=1, with_image=False) for i in (0, 1)])
    assert "images" not in batch and batch["image_indices"] == [0, 0]
    assert batch["captions"] == ["pic, red, blue", "pic, red, blue"]


def test_bucket_info_and_tag_frequency(prepared):
    ds = TrainDataset(prepared.scan, None, prepared.choices)
    info = ds.bucket_info()
    assert sum(b["count"] for b in info["buckets"].values()) == len(ds)
    assert ds.tag_frequency() == {"2_pic": {"pic": 2, "red": 1, "blue": 1}}


def test_load_rgb_handles_what_users_download(tmp_path):
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert load_rgb(tmp_path / "cmyk.jpg").getpixel((5, 5)) == (255, 0, 0)

    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.save(tmp_path / "pal.png", transparency=0)
    assert load_rgb(tmp_path / "pal.png").getpixel((1, 1)) == (255, 255, 255)

    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 255, 0)]]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    assert load_rgb(tmp_path / "anim.webp").getpixel((0, 0)) == (255, 0, 0)


def test_load_rgb_turns_exif_rotated_photos_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: white left half becomes the top half
    stored = Image.new("RGB", (80, 40), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 40, 40))
    stored.save(tmp_path / "r.jpg", exif=exif, quality=95)
    upright = load_rgb(tmp_path / "r.jpg")
    assert upright.size == (40, 80)
    assert upright.getpixel((20, 10)) == (255, 255, 255)
    assert upright.getpixel((20, 70)) == (0, 0, 0)
