"""Data and caption settings, seen where the trainer sees them: in its training batches.

Each dataset is built from a validated config the way the trainer builds it (Kohya key
names, CaptionOptions.from_config, BatchLoader), so a setting that is declared but not
wired would fail here.
"""

import json
import threading

import pytest
import torch

from tests.helpers import make_toy_dataset, write_preset
from trainer.config import config_from_dict
from trainer.data.captions import CaptionOptions
from trainer.data.dataset import BucketBatcher, TrainDataset, collate
from trainer.data.loader import BatchLoader
from trainer.data.resolved import resolve_dataset
from trainer.plan.training_plan import plan_dataset

TAGS = "toy, red, square, white, small, plain"


def make_config(tmp_path, reg=False, **over):
    data = make_toy_dataset(tmp_path / "data", n=2)
    for txt in (data / "1_toy").glob("*.txt"):
        txt.write_text(TAGS, encoding="utf-8")
    values = {
        "pretrained_model_name_or_path": "unused",
        "train_data_dir": str(data),
        "output_dir": str(tmp_path / "out"),
        "max_resolution": "64,64",
        "min_bucket_reso": 64,
        "max_bucket_reso": 128,
        "bucket_no_upscale": False,
        "mixed_precision": "no",
        "train_batch_size": 2,
        "seed": 3,
        **over,
    }
    if reg:
        folder = tmp_path / "reg" / "1_toy"
        folder.mkdir(parents=True)
        for src in (data / "1_toy").iterdir():
            (folder / src.name).write_bytes(src.read_bytes())  # identical pictures and captions
        values["reg_data_dir"] = str(tmp_path / "reg")
    return config_from_dict(values)


def make_loader(cfg, workers=0, persistent=False, warnings=None):
    p = resolve_dataset(cfg)
    ds = TrainDataset(
        p.scan,
        p.reg_scan,
        p.choices,
        p.reg_choices,
        flip_aug=cfg.flip_aug,
        random_crop=cfg.random_crop,
        color_aug=cfg.color_aug,
        captions=CaptionOptions.from_config(cfg),
        seed=cfg.seed,
        on_warning=(warnings.append if warnings is not None else None),
    )
    batcher = BucketBatcher(ds.bucket_entries(), cfg.train_batch_size, cfg.seed)
    return ds, BatchLoader(ds, batcher, with_images=True, workers=workers, persistent=persistent)


def captions_per_epoch(cfg, epochs=8):
    _, loader = make_loader(cfg)
    return {e: [c for b in loader.epoch(e) for c in b["captions"]] for e in range(1, epochs + 1)}


# ---- captions ---------------------------------------------------------------------------
def test_prefix_and_suffix_reach_every_batch(tmp_path):
    cfg, _ = make_config(tmp_path, caption_prefix="mychar,", caption_suffix="masterpiece")
    for caps in captions_per_epoch(cfg, 2).values():
        assert caps == [f"mychar, {TAGS} masterpiece"] * 2  # joined with a space, as Kohya does


def test_shuffle_caption_keeps_the_first_tokens_in_place(tmp_path):
    cfg, _ = make_config(tmp_path, shuffle_caption=True, keep_tokens=2)
    seen = set()
    for caps in captions_per_epoch(cfg).values():
        for cap in caps:
            tags = cap.split(", ")
            assert tags[:2] == ["toy", "red"] and sorted(tags) == sorted(TAGS.split(", "))
            seen.add(cap)
    assert len(seen) > 3  # the rest really moves


def test_without_shuffle_the_caption_is_left_alone(tmp_path):
    cfg, _ = make_config(tmp_path, keep_tokens=2)
    assert {c for caps in captions_per_epoch(cfg, 3).values() for c in caps} == {TAGS}


def test_caption_dropout_rate_trains_some_images_without_caption(tmp_path):
    cfg, _ = make_config(tmp_path, caption_dropout_rate=0.5)
    caps = [c for cs in captions_per_epoch(cfg).values() for c in cs]
    assert "" in caps and TAGS in caps
    cfg, _ = make_config(tmp_path / "all", caption_dropout_rate=1.0)
    assert {c for cs in captions_per_epoch(cfg, 2).values() for c in cs} == {""}


def test_caption_dropout_every_n_epochs_empties_those_epochs(tmp_path):
    cfg, _ = make_config(tmp_path, caption_dropout_every_n_epochs=2)
    for epoch, caps in captions_per_epoch(cfg, 4).items():
        assert caps == ([""] * 2 if epoch % 2 == 0 else [TAGS] * 2), epoch


def test_caption_tag_dropout_drops_tags_but_never_the_kept_ones(tmp_path):
    cfg, _ = make_config(tmp_path, caption_tag_dropout_rate=0.5, keep_tokens=1)
    caps = [c for cs in captions_per_epoch(cfg).values() for c in cs]
    assert all(c.startswith("toy") for c in caps)
    assert any(len(c.split(", ")) < 6 for c in caps)
    cfg, _ = make_config(tmp_path / "all", caption_tag_dropout_rate=1.0, keep_tokens=1)
    assert {c for cs in captions_per_epoch(cfg, 2).values() for c in cs} == {"toy"}


# ---- augmentation -------------------------------------------------------------------------
def test_flip_aug_makes_mirrored_batches(tmp_path):
    cfg, _ = make_config(tmp_path, flip_aug=True)
    ds, loader = make_loader(cfg)
    flips = []
    for epoch in range(1, 6):
        for batch in loader.epoch(epoch):
            for k, (i, flipped) in enumerate(zip(batch["indices"], batch["flipped"], strict=True)):
                plain = ds.load_image(i, flip=False)["image"]
                expected = plain.flip(-1) if flipped else plain
                assert torch.equal(batch["images"][k], expected)
                flips.append(flipped)
    assert True in flips and False in flips
    assert not torch.equal(plain, plain.flip(-1))  # the toy picture is not symmetric


def test_color_aug_shifts_colours_now_and_then_but_not_the_picture(tmp_path):
    cfg, _ = make_config(tmp_path, color_aug=True)
    ds, loader = make_loader(cfg)
    changed = unchanged = 0
    for epoch in range(1, 11):
        for batch in loader.epoch(epoch):
            for k, i in enumerate(batch["indices"]):
                plain = ds.load_image(i)["image"]
                got = batch["images"][k]
                white = (plain == 1.0).all(dim=0)
                assert torch.equal(got[:, white], plain[:, white])  # white stays white
                if torch.equal(got, plain):
                    unchanged += 1
                else:
                    changed += 1
                    assert (got - plain).abs().max() < 0.6  # a small shift, not another image
    assert changed >= 2 and unchanged >= 6  # about one sample in three
    # the same seed gives the same augmentation (reruns and worker processes agree)
    _, again = make_loader(cfg)
    assert torch.equal(next(iter(again.epoch(3)))["images"], next(iter(loader.epoch(3)))["images"])


def test_color_aug_and_random_crop_turn_the_latent_cache_off_with_a_notice(tmp_path):
    for key in ("color_aug", "random_crop"):
        _, warnings = make_config(tmp_path / key, **{key: True, "cache_latents": True})
        assert any(key in w and "latent cache is off" in w for w in warnings), warnings
    _, warnings = make_config(tmp_path / "none", cache_latents=True)
    assert not any("latent cache is off" in w for w in warnings)


def test_color_aug_setting_is_in_the_schema_and_loads_from_a_kohya_preset(tmp_path):
    from trainer.config import FIELDS

    spec = FIELDS["color_aug"]
    assert (spec.tab, spec.group, spec.type, spec.default) == ("Advanced", "Data", bool, False)
    assert spec.help and spec.help_ja and spec.label_ja
    cfg, _ = make_config(
        tmp_path, color_aug=True, max_data_loader_n_workers="2", persistent_data_loader_workers=True
    )
    assert cfg.color_aug and cfg.max_data_loader_n_workers == 2 and cfg.persistent_data_loader_workers


# ---- data loader workers --------------------------------------------------------------------
def _batches(loader, epochs):
    return [(b["indices"], b["captions"], b["flipped"], b["images"]) for e in epochs for b in loader.epoch(e)]


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_give_the_same_batches_as_the_main_process(tmp_path, persistent):
    cfg, _ = make_config(
        tmp_path,
        flip_aug=True,
        color_aug=True,
        shuffle_caption=True,
        caption_dropout_rate=0.3,
        train_batch_size=1,
    )
    _, main_loader = make_loader(cfg)
    _, worker_loader = make_loader(cfg, workers=2, persistent=persistent)
    expected, got = _batches(main_loader, [1, 2, 3]), _batches(worker_loader, [1, 2, 3])
    assert len(got) == len(expected) == 6
    for (i1, c1, f1, img1), (i2, c2, f2, img2) in zip(expected, got, strict=True):
        assert (i1, c1, f1) == (i2, c2, f2)
        assert torch.equal(img1, img2)


def test_a_broken_image_in_a_worker_is_reported_by_the_main_process_once(tmp_path):
    cfg, _ = make_config(tmp_path)
    warnings = []
    _, loader = make_loader(cfg, workers=1, warnings=warnings)
    (tmp_path / "data" / "1_toy" / "img0.png").write_bytes(b"not a png any more")
    batches = [b for e in (1, 2) for b in loader.epoch(e)]
    assert all(len(b["indices"]) == 1 for b in batches)  # the good image still trains
    assert len(warnings) == 1 and "img0.png" in warnings[0]


# ---- regularisation images -----------------------------------------------------------------
def test_reg_images_loss_is_weighted_by_prior_loss_weight(tmp_path, tiny_model):
    """A reg image identical to a training image (same picture, caption, noise) adds its
    loss times prior_loss_weight."""
    from trainer.run.train import Run

    cfg, _ = make_config(
        tmp_path,
        reg=True,
        pretrained_model_name_or_path=str(tiny_model("sd15")),
        prior_loss_weight=0.25,
        cache_latents=False,
        optimizer="AdamW",
        train_batch_size=1,
    )
    prepared = resolve_dataset(cfg)
    run = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    run.prepare()
    entries = run.dataset.entries
    train_i = next(i for i, e in enumerate(entries) if not e.is_reg)
    reg_i = next(
        i for i, e in enumerate(entries) if e.is_reg and e.item.path.name == entries[train_i].item.path.name
    )

    def loss_of(i):
        torch.manual_seed(0)  # the VAE's latent sample
        return float(
            run.step_loss(collate([run.dataset.sample(i, 1)]), torch.Generator().manual_seed(1)).detach()
        )

    train_loss = loss_of(train_i)
    assert train_loss > 0
    assert loss_of(reg_i) == pytest.approx(0.25 * train_loss, rel=1e-5)
    assert run.dataset.num_reg_images == 2


# ---- end to end -----------------------------------------------------------------------------
def test_a_run_with_workers_and_color_aug_trains_without_a_latent_cache(tiny_model, tmp_path, capsys):
    from trainer.__main__ import main

    data = make_toy_dataset(tmp_path / "data", n=2)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        max_train_steps=2,
        epoch=1,
        color_aug=True,
        flip_aug=True,
        cache_latents=True,
        max_data_loader_n_workers=1,
        persistent_data_loader_workers=True,
    )
    assert main(["--config", str(preset), "--events", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    messages = [e.get("message", "") for e in events]
    assert any("color_aug" in m and "latent cache is off" in m for m in messages)
    assert not any(m.startswith("Caching latents") for m in messages)
    assert [e["step"] for e in events if e["kind"] == "step"][-1] == 2
    assert (tmp_path / "out" / "toy.safetensors").is_file()
    assert not list((tmp_path / "data" / "1_toy").glob("*.npz"))


# ---- resume in the middle of an epoch -------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1])
def test_batches_a_resumed_run_already_trained_are_not_loaded(tmp_path, workers):
    cfg, _ = make_config(tmp_path, train_batch_size=1)
    _ds, loader = make_loader(cfg, workers=workers)
    full = [b["indices"] for b in loader.epoch(1)]
    assert len(full) == 2  # two images, batch 1
    loaded = []
    original = TrainDataset.sample

    def spy(self, i, epoch=1, with_image=True):
        loaded.append(i)
        return original(self, i, epoch, with_image)

    TrainDataset.sample = spy
    try:
        resumed = list(loader.epoch(1, skip=1))
    finally:
        TrainDataset.sample = original
    assert resumed[0] is None  # the trained batch: its position kept, nothing loaded
    assert [b["indices"] for b in resumed[1:]] == full[1:]
    if workers == 0:  # (a worker process has its own copy of the class)
        assert loaded == full[1]


@pytest.mark.parametrize("previews", [False, True])
def test_with_latents_cached_the_run_frees_the_vae_parts_it_will_not_use(tmp_path, tiny_model, previews):
    """After caching, the encoder is never used again; the decoder only for previews. A run
    frees what it will not use (CPU RAM), never parts of models it was handed."""
    from trainer.models import load_models
    from trainer.run.train import Run

    over = {"sample_prompts": "a toy --w 64 --h 64 --s 2", "sample_every_n_steps": 1} if previews else {}
    cfg, _ = make_config(
        tmp_path,
        pretrained_model_name_or_path=str(tiny_model("sd15")),
        cache_latents=True,
        optimizer="AdamW",
        **over,
    )
    prepared = resolve_dataset(cfg)
    run = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    run.prepare()
    assert run.latent_cache and run.models.vae.encoder is None
    assert (run.models.vae.decoder is not None) is previews
    handed = load_models(cfg.pretrained_model_name_or_path)
    again = Run(cfg, plan_dataset(prepared), prepared, lambda event: None, threading.Event())
    again.prepare(handed)
    assert handed.vae.encoder is not None and handed.vae.decoder is not None
