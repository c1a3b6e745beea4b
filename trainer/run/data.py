"""The data phase of a run (a mixin of trainer.run.train.Run): dataset, loader, caches, and
each batch's latents and text conditioning.

It reads the run's ResolvedDataset (`self.prepared`, made once by
trainer.data.resolved.resolve_dataset before the plan): the images in their buckets become
the TrainDataset, exactly as the plan counted them; no folder or dataset TOML is read again.

Features and the settings behind them:
- latent cache (`cache_latents`, `cache_latents_to_disk`, `vae_batch_size`): each image is
  encoded once, not once per repeat, and kept in `<image>.npz` files across runs
  (`trainer.data.latent_cache`); the VAE then leaves the GPU. Several processes encode
  one share each and exchange the latents.
- text cache (`cache_text_encoder_outputs`, or automatically when the text encoder is
  frozen and the captions never change): each caption is encoded once; the text
  encoders then leave the GPU. Both caches live in host memory (they grow with the
  dataset); each batch is copied to the GPU without a host wait (trainer.transfer).
- images loaded by DataLoader workers (`max_data_loader_n_workers`): `trainer.data.loader`.
- `masked_loss`: each batch carries its pictures' transparency as loss masks (cached
  beside the latents).
- `weighted_captions`: (word:1.2) weights in captions (`trainer.text.weights`).
"""

from __future__ import annotations

import random
from functools import partial

import torch

from trainer.config import TrainingConfig
from trainer.data.captions import CaptionOptions
from trainer.data.dataset import BucketBatcher, TrainDataset
from trainer.data.loader import BatchLoader
from trainer.data.resolved import ResolvedDataset
from trainer.events import Event, EventCallback
from trainer.text.conditioning import TextConditioner
from trainer.text.length import check_captions
from trainer.transfer import to_device


class RunData:
    """Builds the dataset, loader and caches of a Run, and serves each step's inputs."""

    cfg: TrainingConfig
    prepared: ResolvedDataset  # the settings, images and buckets the plan was made from

    def _make_data(self) -> None:
        cfg, p = self.cfg, self.prepared
        self.dataset = TrainDataset(
            p.scan,
            p.reg_scan,
            p.choices,
            p.reg_choices,
            flip_aug=cfg.flip_aug,
            random_crop=cfg.random_crop,
            color_aug=cfg.color_aug,
            captions=CaptionOptions.from_config(cfg),
            seed=cfg.seed,
            masked_loss=cfg.masked_loss,
            on_warning=partial(_warn, self.emit),  # not a lambda over self: no cycle
        )
        self.batcher = BucketBatcher(self.dataset.bucket_entries(), cfg.train_batch_size, cfg.seed)
        self.text = TextConditioner(
            self.models.tokenizers,
            self.models.text_encoders,
            arch=self.models.arch,
            clip_skip=cfg.clip_skip,
            max_token_length=cfg.max_token_length,
            weighted=cfg.weighted_captions,
        )
        too_long = check_captions(
            self.dataset,
            self.models.tokenizers[0],
            cfg.max_token_length,
            cfg.caption_prefix,
            cfg.caption_suffix,
            weighted=cfg.weighted_captions,
        )
        if too_long:  # the tokenizer would cut them silently
            self.emit(Event("warning", {"message": too_long}))
        use_cache = caches_latents(cfg)
        self.mask_cache: dict | None = {} if cfg.masked_loss else None
        if cfg.masked_loss:
            self._check_masks()
        self.latent_cache = self._cache_latents() if use_cache else None
        self.loader = BatchLoader(
            self.dataset,
            self.batcher,
            with_images=self.latent_cache is None,
            workers=cfg.max_data_loader_n_workers,
            persistent=cfg.persistent_data_loader_workers,
            rank=self.acc.process_index,
            world=self.acc.num_processes,
        )
        self.text_cache = self._cache_text() if caches_text(cfg, self.train_te) else None
        if self.text_cache is not None and not self.train_te:
            for te in self.models.text_encoders:
                te.to("cpu")  # no longer needed on the GPU
        if self.latent_cache is not None:
            self.models.vae.to("cpu")
            if getattr(self, "owns_models", False):
                self._release_vae()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _release_vae(self) -> None:
        """With every latent cached the VAE's encoder is never used again, and without
        preview samples neither is its decoder: free them (0.3 GB of RAM on SD1.5, where
        a CPU run's peak is its steps). Only models this run loaded itself are changed."""
        vae = self.models.vae
        vae.encoder = vae.quant_conv = None
        if not previews_wanted(self.cfg):
            vae.decoder = vae.post_quant_conv = None

    def _check_masks(self) -> None:
        """masked_loss with pictures that have no transparency teaches as usual: say so."""
        from trainer.data.images import has_alpha

        items = [item for item, _ in self.dataset.images]
        with_alpha = sum(has_alpha(item.path) for item in items)
        if with_alpha < len(items):
            message = (
                f"masked_loss: {len(items) - with_alpha} of {len(items)} image(s) have no transparency "
                "(alpha channel), so their whole picture is trained. Save the images as PNG/WebP with "
                "a transparent background where the LoRA should not learn."
            )
            self.emit(Event("warning", {"message": message}))

    @torch.no_grad()
    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        vae = self.models.vae
        dist = vae.encode(to_device(images, self.device, vae.dtype)).latent_dist
        return dist.sample().float() * self.models.latent_scale

    def _cache_latents(self) -> dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]]:
        """(image index, flipped) -> (latent, SDXL size conditioning); once per unique image,
        from or to `<image>.npz` files with cache_latents_to_disk (trainer.data.latent_cache)."""
        from trainer.data.latent_cache import build_latent_cache, encode_latents, vae_fingerprint
        from trainer.run.grad_sync import merge_from_ranks

        to_disk, scale = self.cfg.cache_latents_to_disk, self.models.latent_scale
        rank, world = self.acc.process_index, self.acc.num_processes
        cache = build_latent_cache(
            self.dataset,
            partial(encode_latents, self.models.vae, latent_scale=scale, device=self.device),
            latent_scale=scale,
            flip=self.cfg.flip_aug,
            to_disk=to_disk,
            vae_id=vae_fingerprint(self.models.vae) if to_disk else "",
            device="cpu",  # host memory, whatever the dataset's size; each batch goes to the GPU
            batch_size=self.cfg.vae_batch_size,
            seed=self.cfg.seed,  # 0 = one image per VAE call
            masks=self.mask_cache,
            log=lambda message: self.emit(Event("log", {"message": message})),
            warn=lambda message: self.emit(Event("warning", {"message": message})),
            shard=(rank, world),  # several processes: each encodes its share ...
        )
        if world > 1:  # ... and all get every latent (the batches of a rank change each epoch)
            cache = merge_from_ranks(cache, world)
            if self.mask_cache is not None:
                self.mask_cache = merge_from_ranks(self.mask_cache, world)
            # an image another rank could not read: left out of every rank's batches
            self.dataset.failed.update(i for i in range(len(self.dataset.images)) if (i, False) not in cache)
        return cache

    @torch.no_grad()
    def _cache_text(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        opts = CaptionOptions.from_config(self.cfg)
        rng = random.Random(0)  # unused: captions without randomness are fixed strings
        captions = sorted({opts.apply(item.caption, epoch=1, rng=rng) for item, _ in self.dataset.images})
        cache = {}
        for i in range(0, len(captions), 16):
            chunk = captions[i : i + 16]
            hidden, pooled = self.text.encode(chunk)
            for j, caption in enumerate(chunk):
                cache[caption] = (  # host memory: each batch goes to the GPU (_conditioning)
                    hidden[j].to("cpu", copy=True),
                    None if pooled is None else pooled[j].to("cpu", copy=True),
                )
        return cache

    def _conditioning(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.text_cache is not None:
            hidden = torch.stack([self.text_cache[c][0] for c in captions])
            pooled = self.text_cache[captions[0]][1]
            if pooled is not None:
                pooled = to_device(torch.stack([self.text_cache[c][1] for c in captions]), self.device)
            return to_device(hidden, self.device), pooled
        with torch.set_grad_enabled(self.train_te), self.acc.autocast():
            return self.text.encode(captions)

    def _latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self.latent_cache is not None:
            keys = list(zip(batch["image_indices"], batch["flipped"], strict=True))
            pairs = [self.latent_cache[k] for k in keys]
            latents = torch.stack([p[0] for p in pairs])
            time_ids = torch.stack([p[1] for p in pairs])
            if self.mask_cache is not None:
                batch["masks"] = to_device(torch.stack([self.mask_cache[k] for k in keys]), self.device)
        else:
            latents = self._encode_images(batch["images"])
            time_ids = torch.cat(
                [batch["original_sizes"], batch["crop_top_lefts"], batch["target_sizes"]], dim=1
            ).float()
        # copies that do not wait for the GPU: the host queues this step during the last one
        return to_device(latents, self.device), to_device(time_ids, self.device)


def caches_latents(cfg: TrainingConfig) -> bool:
    """Whether the run caches latents: asked for, and no random_crop / color_aug (they
    change the image every time; the checks say so)."""
    return (cfg.cache_latents or cfg.cache_latents_to_disk) and not (cfg.random_crop or cfg.color_aug)


def previews_wanted(cfg: TrainingConfig) -> bool:
    """Whether the run makes preview samples (the VAE's decoder is needed to the end)."""
    scheduled = cfg.sample_every_n_steps > 0 or cfg.sample_every_n_epochs > 0 or cfg.sample_at_first
    return bool(scheduled and cfg.sample_prompts.strip())


def caches_text(cfg: TrainingConfig, train_te: bool) -> bool:
    """Whether the run caches text-encoder outputs: asked for (the checks made sure that only
    comes with a frozen TE and fixed captions), or by itself when the TE is frozen and no
    caption changes between epochs (no shuffle, dropout or wildcards)."""
    captions_fixed = not (
        cfg.shuffle_caption
        or cfg.caption_dropout_rate > 0
        or cfg.enable_wildcard
        or cfg.caption_dropout_every_n_epochs > 0
        or cfg.caption_tag_dropout_rate > 0
    )
    return cfg.cache_text_encoder_outputs or (captions_fixed and not train_te)


def _warn(emit: EventCallback, message: str) -> None:
    """A dataset warning as an event (the dataset keeps the callback, never the run)."""
    emit(Event("warning", {"message": message}))
