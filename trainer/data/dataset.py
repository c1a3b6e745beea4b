"""Images -> tensors, and batches that never mix buckets.

`TrainDataset` expands the scanned folders into one entry per image x repeat (plus the
round-robin reg entries), exactly as the plan counted them. Each entry points at a
unique image (`entry.image_index`), so the trainer can cache one latent per image and
not one per repeat. `BucketBatcher` deals the entries into same-bucket batches, shuffled
per epoch from the seed. An image that breaks mid-run is skipped with a warning naming
it: a run of hours must not die on one bad download.

Typical use without a latent cache (workers safe: the epoch travels with each index):

    ds = TrainDataset(p.scan, p.reg_scan, p.choices, p.reg_choices, flip_aug=True, seed=42)
    sampler = EpochBatchSampler(BucketBatcher(ds.bucket_entries(), batch_size, seed))
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=2)
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        for batch in loader:   # None when every image of the batch failed to load
            ...
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from trainer.data.augment import color_augment
from trainer.data.buckets import BucketChoice, Size, select_bucket
from trainer.data.captions import CaptionOptions, tag_frequency
from trainer.data.folders import FolderScan, ImageItem, reg_repeat_counts
from trainer.data.images import ImageError, crop_like, load_alpha, load_rgb, resize_and_crop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpandedEntry:
    """One image x repeat of an epoch."""

    item: ImageItem
    choice: BucketChoice
    is_reg: bool
    image_index: int  # index into TrainDataset.images: the same for every repeat


class BucketBatcher:
    """Deals entries into batches of one bucket each, reshuffled every epoch.

    entries: (index into the expanded list, bucket). For a given seed and epoch the
    batches are always the same; a new epoch gives a new order.
    """

    def __init__(self, entries: Sequence[tuple[int, Size]], batch_size: int, seed: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self._by_bucket: dict[Size, list[int]] = {}
        for index, bucket in entries:
            self._by_bucket.setdefault(tuple(bucket), []).append(index)

    def __len__(self) -> int:
        """Batches per epoch: each bucket rounds up on its own."""
        return sum(-(-len(v) // self.batch_size) for v in self._by_bucket.values())

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of an epoch: shuffled inside each bucket, then in batch order."""
        rng = random.Random(self.seed + epoch)
        batches: list[list[int]] = []
        for bucket in sorted(self._by_bucket):
            indices = list(self._by_bucket[bucket])
            rng.shuffle(indices)
            batches.extend(indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size))
        rng.shuffle(batches)
        return batches


def rank_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """The batches process `rank` of `world` trains: every world-th of the epoch's.

    Every process takes the same number (the epoch's batch count rounded up to a multiple
    of `world`, the missing ones repeated from the start of the epoch, as accelerate's
    even_batches does): a process that stepped once more than the others would wait
    forever in the gradient exchange of a step they never take."""
    if world > 1 and batches and len(batches) % world:
        missing = world - len(batches) % world
        batches = batches + [batches[i % len(batches)] for i in range(missing)]
    return batches[rank::world]


def batches_per_process(num_batches: int, world: int) -> int:
    """How many batches each of `world` processes trains per epoch (see rank_batches)."""
    return -(-num_batches // max(1, world))


class EpochBatchSampler(Sampler):
    """A DataLoader batch_sampler over BucketBatcher that yields (index, epoch) keys,
    so worker processes know the epoch (for caption dropout) without shared state.

    With several training processes, process `rank` of `world` takes its share of the
    epoch's batches (`rank_batches`), as the trainer does without a DataLoader.
    """

    drop_last = False

    def __init__(self, batcher: BucketBatcher, epoch: int = 1, rank: int = 0, world: int = 1):
        super().__init__()
        self.batcher = batcher
        self.batch_size = batcher.batch_size
        self.epoch = epoch
        self.skip = 0
        self.rank, self.world = rank, max(1, world)
        self.dealt: list[list[int]] = []  # the entries of each batch of the epoch being dealt

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Choose the epoch (counted from 1) that the next iteration deals, and how many of
        its first batches to leave out (a resumed run already trained them)."""
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        self.dealt = rank_batches(self.batcher.epoch_batches(self.epoch), self.rank, self.world)
        for batch in self.dealt[self.skip :]:
            yield [(i, self.epoch) for i in batch]

    def __len__(self) -> int:
        return batches_per_process(len(self.batcher), self.world)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float tensor [3, H, W] in [-1, 1] (what the VAE expects)."""
    arr = np.array(img.convert("RGB"), dtype=np.uint8, copy=True)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


class TrainDataset(Dataset):
    """The expanded training set: train images x repeats, then reg images round-robin
    until they match the train count (as Kohya and the plan count them).

    Features and the settings behind them:
    - flip_aug: a random horizontal flip per sample and epoch (`__getitem__`).
    - random_crop: a random rather than centred crop of the bucket's overflow.
    - color_aug: now and then a small hue or gamma change (`trainer.data.augment`).
    - captions: prefix/suffix, shuffle, keep_tokens, dropouts (CaptionOptions).
    - seed: every random choice derives from (seed, epoch, entry), so reruns repeat.
    - masked_loss: each sample also carries its picture's transparency as a loss mask
      ("mask", [1, H, W] in 0..1; all ones for a picture without transparency).
    """

    def __init__(
        self,
        scan: FolderScan,
        reg_scan: FolderScan | None,
        choices: Sequence[BucketChoice],
        reg_choices: Sequence[BucketChoice] = (),
        *,
        flip_aug: bool = False,
        random_crop: bool = False,
        color_aug: bool = False,
        captions: CaptionOptions | None = None,
        seed: int = 0,
        masked_loss: bool = False,
        on_warning: Callable[[str], None] | None = None,
    ):
        if len(choices) != len(scan.items):
            raise ValueError(f"{len(choices)} bucket choices for {len(scan.items)} images")
        self.flip_aug = flip_aug
        self.random_crop = random_crop
        self.color_aug = color_aug
        self.captions = captions or CaptionOptions()
        self.seed = seed
        self.masked_loss = masked_loss
        self.on_warning = on_warning or log.warning
        self.images: list[tuple[ImageItem, BucketChoice]] = []
        self.entries: list[ExpandedEntry] = []
        self.failed: set[int] = set()
        train_total = 0
        for item, choice in zip(scan.items, choices, strict=True):
            self._add(item, choice, item.repeats, is_reg=False)
            train_total += item.repeats
        self.num_train_images = len(self.images)
        if reg_scan is not None and reg_scan.items:
            if len(reg_choices) != len(reg_scan.items):
                raise ValueError(f"{len(reg_choices)} bucket choices for {len(reg_scan.items)} reg images")
            uses = reg_repeat_counts(reg_scan.items, train_total)
            for item, choice, n in zip(reg_scan.items, reg_choices, uses, strict=True):
                if n:
                    self._add(item, choice, n, is_reg=True)
        self.num_reg_images = len(self.images) - self.num_train_images

    def _add(self, item: ImageItem, choice: BucketChoice, times: int, is_reg: bool) -> None:
        index = len(self.images)
        self.images.append((item, choice))
        entry = ExpandedEntry(item=item, choice=choice, is_reg=is_reg, image_index=index)
        self.entries.extend([entry] * times)

    def __len__(self) -> int:
        return len(self.entries)

    def bucket_entries(self) -> list[tuple[int, Size]]:
        """(entry index, bucket) pairs for BucketBatcher."""
        return [(i, e.choice.bucket) for i, e in enumerate(self.entries)]

    def rng_for(self, i: int, epoch: int, purpose: str) -> random.Random:
        """The random source of entry i in an epoch for one purpose ("flip", "caption",
        "crop"): the same in any worker process and on any rerun."""
        return random.Random(f"{self.seed}:{epoch}:{i}:{purpose}")

    def load_unique(
        self,
        image_index: int,
        flip: bool = False,
        rng: random.Random | None = None,
        color_rng: random.Random | None = None,
    ) -> dict | None:
        """Load one unique image, bucket-sized (for latent caching: once per image).

        rng draws a random crop; color_rng, when given, a colour augmentation.

        Returns dict(image=[3,H,W] in [-1,1], original_size=(h,w), crop_top_left=(top,
        left), target_size=(h,w)), or None if the file cannot be read (warned once).
        """
        if image_index in self.failed:
            return None
        item, choice = self.images[image_index]
        try:
            img = load_rgb(item.path)
            alpha = load_alpha(item.path) if self.masked_loss else None
        except ImageError as err:
            self.failed.add(image_index)
            self.on_warning(f"skipped {item.path} during training: {err}")
            return None
        original_size = (img.height, img.width)
        if img.size != (item.width, item.height):
            # The file changed since the scan; keep its bucket so batches stay intact.
            choice = select_bucket(img.width, img.height, [choice.bucket])
        img, (top, left) = resize_and_crop(img, choice, random_crop=self.random_crop, rng=rng)
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            left = choice.resized[0] - left - choice.bucket[0]  # the mirrored crop
        if color_rng is not None:
            img = color_augment(img, color_rng)
        out = {
            "image": to_tensor(img),
            "original_size": original_size,
            "crop_top_left": (top, left),
            "target_size": (choice.bucket[1], choice.bucket[0]),
        }
        if self.masked_loss:
            out["mask"] = self._mask(alpha, choice, top, left, flip, img.size)
        return out

    @staticmethod
    def _mask(
        alpha, choice: BucketChoice, top: int, left: int, flip: bool, size: tuple[int, int]
    ) -> torch.Tensor:
        """The loss mask of a loaded sample: its transparency, cut like the picture."""
        if alpha is None:
            return torch.ones(1, size[1], size[0])
        if flip:  # `left` is already the mirrored crop: cut the unmirrored box, then mirror
            left = choice.resized[0] - left - choice.bucket[0]
        mask = crop_like(alpha, choice, top, left)
        if flip:
            mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None]

    def load_image(
        self,
        i: int,
        flip: bool = False,
        rng: random.Random | None = None,
        color_rng: random.Random | None = None,
    ) -> dict | None:
        """load_unique for expanded entry i (None if its file cannot be read)."""
        return self.load_unique(self.entries[i].image_index, flip, rng, color_rng)

    def caption(self, i: int, epoch: int) -> str:
        """The processed caption of entry i in this epoch (counted from 1)."""
        item = self.entries[i].item
        return self.captions.apply(
            item.caption, epoch=epoch, rng=self.rng_for(i, epoch, "caption"), lines=item.caption_lines
        )

    def flip_for(self, i: int, epoch: int) -> bool:
        """Whether flip_aug mirrors entry i in this epoch."""
        return self.flip_aug and self.rng_for(i, epoch, "flip").random() < 0.5

    def sample(self, i: int, epoch: int = 1, with_image: bool = True) -> dict | None:
        """Everything a step needs about entry i; None if its image cannot be loaded.

        With with_image=False (latents cached) only the caption and indices are made.
        """
        entry = self.entries[i]
        if entry.image_index in self.failed:  # unreadable before (also when latents were cached)
            return None
        out: dict = {
            "index": i,
            "image_index": entry.image_index,
            "is_reg": entry.is_reg,
            "caption": self.caption(i, epoch),
            "flipped": self.flip_for(i, epoch),
        }
        if with_image:
            crop_rng = self.rng_for(i, epoch, "crop") if self.random_crop else None
            color_rng = self.rng_for(i, epoch, "color") if self.color_aug else None
            loaded = self.load_image(i, out["flipped"], crop_rng, color_rng)
            if loaded is None:
                return None
            out.update(loaded)
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> dict | None:
        """dataset[i] (epoch 1) or dataset[(i, epoch)], as EpochBatchSampler yields."""
        i, epoch = (key, 1) if isinstance(key, int) else key
        return self.sample(int(i), int(epoch))

    def bucket_info(self) -> dict:
        """ss_bucket_info metadata: counts (with repeats) per bucket, mean AR error."""
        counts: dict[Size, int] = {}
        for e in self.entries:
            counts[e.choice.bucket] = counts.get(e.choice.bucket, 0) + 1
        errors = [abs(c.bucket[0] / c.bucket[1] - item.width / item.height) for item, c in self.images]
        return {
            "buckets": {
                str(k): {"resolution": list(b), "count": counts[b]} for k, b in enumerate(sorted(counts))
            },
            "mean_img_ar_error": float(np.mean(errors)) if errors else 0.0,
        }

    def tag_frequency(self) -> dict[str, dict[str, int]]:
        """ss_tag_frequency metadata of the training images (reg images left out)."""
        return tag_frequency(item for item, _ in self.images[: self.num_train_images])


def collate(samples: Sequence[dict | None]) -> dict | None:
    """Stack a batch of samples from one bucket; failed (None) samples are dropped.

    Returns None when nothing is left. Keys: images [B,3,H,W] (if the samples carry
    images), original_sizes / crop_top_lefts / target_sizes [B,2] long, captions,
    is_reg [B] bool, indices, image_indices, flipped.
    """
    kept = [s for s in samples if s is not None]
    if not kept:
        return None
    batch: dict = {
        "captions": [s["caption"] for s in kept],
        "is_reg": torch.tensor([bool(s["is_reg"]) for s in kept]),
        "indices": [s["index"] for s in kept],
        "image_indices": [s["image_index"] for s in kept],
        "flipped": [bool(s["flipped"]) for s in kept],
    }
    if "image" in kept[0]:
        shapes = {tuple(s["image"].shape) for s in kept}
        if len(shapes) != 1:
            raise ValueError(f"a batch mixes image sizes {sorted(shapes)}; batches must come from one bucket")
        batch["images"] = torch.stack([s["image"] for s in kept])
        if "mask" in kept[0]:
            batch["masks"] = torch.stack([s["mask"] for s in kept])
        for key in ("original_size", "crop_top_left", "target_size"):
            batch[key + "s"] = torch.tensor([list(s[key]) for s in kept], dtype=torch.long)
    return batch
