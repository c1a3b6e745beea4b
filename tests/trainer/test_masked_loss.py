"""masked_loss: a picture's transparency decides where the LoRA learns."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.helpers import DataCfg, write_preset
from trainer.data.dataset import TrainDataset, collate
from trainer.data.latent_cache import build_latent_cache, latent_mask
from trainer.data.resolved import resolve_dataset
from trainer.run.loss import per_sample_loss


def half_transparent(path: Path, size=(256, 256)) -> None:
    """Opaque red on the left half, fully transparent on the right."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, size[0] // 2, size[1]))
    img.save(path)


def test_the_loss_counts_only_the_unmasked_part():
    pred, target = torch.zeros(2, 4, 8, 8), torch.ones(2, 4, 8, 8)
    mask = torch.ones(2, 1, 64, 64)  # at the picture's size; the loss brings it to 8x8
    mask[0, :, :, 32:] = 0
    mask[1] = 0
    for loss_type, c in (("l2", None), ("l1", None), ("huber", torch.full((2,), 0.1))):
        loss = per_sample_loss(pred, target, loss_type, c, mask)
        full = per_sample_loss(pred, target, loss_type, c)
        assert loss[0].item() == pytest.approx(full[0].item() / 2)  # half the area teaches
        assert loss[1].item() == 0.0  # a fully transparent picture teaches nothing


def test_latent_mask_averages_areas():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8, :] = 1.0
    small = latent_mask(mask, (2, 2))
    assert small.flatten().tolist() == [1.0, 1.0, 0.0, 0.0]
    assert latent_mask(small, (2, 2)) is not None and torch.equal(latent_mask(small, (2, 2)), small)


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "1_x").mkdir()
    half_transparent(tmp_path / "1_x" / "half.png", size=(300, 256))  # cut to 256x256, left 22
    Image.new("RGB", (256, 256), (0, 200, 0)).save(tmp_path / "1_x" / "opaque.png")
    p = resolve_dataset(
        DataCfg(
            train_data_dir=str(tmp_path),
            max_resolution="320,320",
            max_bucket_reso=512,
            bucket_no_upscale=True,
        )
    )
    return TrainDataset(p.scan, None, p.choices, masked_loss=True)


def test_the_mask_is_cut_and_mirrored_like_the_picture(dataset):
    index = next(i for i, (item, _) in enumerate(dataset.images) if item.path.name == "half.png")
    plain = dataset.load_unique(index, flip=False)
    mask = plain["mask"][0]
    assert mask.shape == (256, 256) and plain["crop_top_left"] == (0, 22)
    # opaque columns 0..149 of the picture are 0..127 after the crop at 22
    assert mask[:, :127].min() == 1.0 and mask[:, 129:].max() == 0.0
    flipped = dataset.load_unique(index, flip=True)["mask"][0]
    assert torch.equal(flipped, mask.flip(-1))
    # the picture's red (opaque) half lines up with the mask
    assert (plain["image"][0, :, :127] > 0.9).all() and (flipped[:, -127:] == 1).all()


def test_a_picture_without_transparency_has_a_full_mask_and_batches_carry_masks(dataset):
    index = next(i for i, (item, _) in enumerate(dataset.images) if item.path.name == "opaque.png")
    sample = dataset.load_unique(index)
    assert bool((sample["mask"] == 1).all())
    batch = collate([dataset.sample(i) for i in range(len(dataset))][:1])
    assert batch["masks"].shape[1:] == (1, 256, 256)


def test_the_latent_cache_keeps_masks_at_the_latent_size_on_disk_too(dataset):
    def encode(images, seeds):
        return torch.zeros(images.shape[0], 4, images.shape[2] // 8, images.shape[3] // 8)

    for attempt in range(2):  # the second run reads the .npz files
        masks: dict = {}
        calls = []
        build_latent_cache(
            dataset,
            lambda im, s, calls=calls: calls.append(1) or encode(im, s),
            latent_scale=1.0,
            flip=True,
            to_disk=True,
            vae_id="v",
            masks=masks,
        )
        assert len(masks) == 4 and all(m.shape == (1, 32, 32) for m in masks.values())
        half = next(
            m for (i, f), m in masks.items() if dataset.images[i][0].path.name == "half.png" and not f
        )
        assert half[0, :, :15].min() == 1.0 and half[0, :, 17:].max() == 0.0
        assert (calls == []) == (attempt == 1)
    unmasked = build_latent_cache(dataset, encode, latent_scale=1.0, flip=False, to_disk=True, vae_id="v")
    assert len(unmasked) == 2


def test_a_fully_transparent_dataset_teaches_nothing(tiny_model, tmp_path):
    from safetensors import safe_open

    from trainer.api import run_training

    folder = tmp_path / "data" / "1_ghost"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(folder / f"g{i}.png")
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        tmp_path / "data",
        max_train_steps=2,
        epoch=1,
        masked_loss=True,
        cache_latents=True,
        network_train_unet_only=True,
    )
    from trainer.presets import load_preset

    cfg, _ = load_preset(preset)
    events = []
    assert run_training(cfg, events.append) == 0
    losses = [e.data["loss"] for e in events if e.kind == "step"]
    assert losses and all(v == 0.0 for v in losses)
    with safe_open(str(tmp_path / "out" / "toy.safetensors"), "pt") as f:
        names = f.keys()
        ups = [f.get_tensor(k) for k in names if "lora_up" in k]
    assert ups and all(bool((u == 0).all()) for u in ups)  # the LoRA learned nothing
