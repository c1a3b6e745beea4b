"""The latent cache: each image encoded by the VAE once, in memory or on disk.

`cache_latents` encodes every unique image once before training (and its mirror image
with `flip_aug`), not once per repeat and epoch. `cache_latents_to_disk` also keeps each
image's latents in `<image stem>.npz` next to the image, as Kohya does, so the next run
skips the VAE for images it has seen. `vae_batch_size` encodes that many images of one
bucket per VAE call (faster); each latent draws its sampling noise from its own seed, so
batching changes nothing but float rounding.

A latent on disk is used only when it is still the latent of this image, in this
bucket, by this VAE: every file carries a key (the image's size and SHA-256, its bucket
and resized size, the VAE's fingerprint, the cache format) and a file whose key differs,
or that lacks the mirrored latent a flip_aug run needs, or that cannot be read, is
rebuilt. Files are plain .npz arrays (read with allow_pickle=False, never pickle), written
to a temp file and renamed, so an interrupted run never leaves half a file.

The .npz holds `latents` (C, H, W; float32, before the VAE scaling factor, as Kohya
stores it), `latents_flipped` with flip_aug, `original_size` (w, h), `crop_ltrb`, plus our
`time_ids`, `time_ids_flipped` (SDXL size conditioning) and `cache_key`; with masked_loss
also `alpha_mask` (and `alpha_mask_flipped`): the picture's transparency at the latent's
size (the key then says so, and a file without them is rebuilt).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.dataset import TrainDataset
from trainer.files import write_file_atomic_with

CACHE_FORMAT = 1  # raise when the image pipeline or the file layout changes
_SAMPLE_PER_TENSOR = 4096

CacheDict = dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]]
Encoder = Callable[[torch.Tensor, list[int]], torch.Tensor]


def latent_mask(mask: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """A [B, 1, H, W] mask brought to the latent's size by area averaging (fp32)."""
    mask = mask.float()
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=tuple(size), mode="area")


def cache_path(image_path: str | Path) -> Path:
    """Where the latents of an image are kept: `<folder>/<image stem>.npz` (Kohya's name)."""
    return Path(image_path).with_suffix(".npz")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (an edited image gets a new one, whatever its date)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@torch.no_grad()
def vae_fingerprint(vae: torch.nn.Module) -> str:
    """A short id of the VAE's encoder weights (the part that makes latents).

    It hashes the shape and an evenly spread sample of every encoder tensor as float32,
    so another VAE, a fine-tuned one or one loaded in another precision gets another id,
    while hashing stays fast for an 80M-parameter VAE on any device.
    """
    digest = hashlib.sha256()
    config = getattr(vae, "config", None)
    digest.update(str(getattr(config, "scaling_factor", "")).encode())
    for name, tensor in vae.state_dict().items():
        if not name.startswith(("encoder.", "quant_conv.")):
            continue
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // _SAMPLE_PER_TENSOR)
        sample = flat[::step].to(device="cpu", dtype=torch.float32).numpy()
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(sample.tobytes())
    return digest.hexdigest()[:16]


def image_key(dataset: TrainDataset, index: int, vae_id: str) -> dict:
    """What a cached latent of image `index` depends on."""
    item, choice = dataset.images[index]
    path = Path(item.path)
    return {
        "format": CACHE_FORMAT,
        "image_bytes": path.stat().st_size,
        "image_sha256": file_sha256(path),
        "bucket": list(choice.bucket),
        "resized": list(choice.resized),
        "vae": vae_id,
    }


def read_cache_file(
    path: Path, key: dict, flips: tuple[bool, ...], masks: bool = False
) -> dict[bool, tuple[np.ndarray, ...]] | None:
    """{flip: (unscaled latent, time_ids[, alpha mask])} from a cache file whose key
    matches, else None (`masks`: the file must hold the loss masks too).

    None also for a missing, unreadable or foreign (e.g. Kohya's own) file: it is rebuilt.
    """
    if not path.is_file():
        return None
    names = {
        f: tuple(n + ("_flipped" if f else "") for n in ("latents", "time_ids", "alpha_mask"))[
            : 3 if masks else 2
        ]
        for f in (False, True)
    }
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "cache_key" not in npz.files or json.loads(str(npz["cache_key"])) != key:
                return None
            if any(n not in npz.files for f in flips for n in names[f]):
                return None
            out = {f: tuple(np.array(npz[n], dtype=np.float32) for n in names[f]) for f in flips}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    bucket_w, bucket_h = key["bucket"]
    for latent, *_ in out.values():
        if latent.ndim != 3 or latent.shape[1] * 8 != bucket_h or latent.shape[2] * 8 != bucket_w:
            return None
    return out


def write_cache_file(
    path: Path,
    key: dict,
    latents: dict[bool, tuple[np.ndarray, ...]],
    original_size: tuple[int, int],
    crop_ltrb: tuple[int, int, int, int],
) -> None:
    """Write the cache file atomically (trainer.files: temp file, flushed, renamed). Raises OSError."""
    arrays: dict[str, np.ndarray] = {
        "cache_key": np.array(json.dumps(key, sort_keys=True)),
        "original_size": np.array(original_size, dtype=np.int64),
        "crop_ltrb": np.array(crop_ltrb, dtype=np.int64),
    }
    for flip, (latent, time_ids, *mask) in latents.items():
        suffix = "_flipped" if flip else ""
        arrays["latents" + suffix] = latent.astype(np.float32)
        arrays["time_ids" + suffix] = time_ids.astype(np.float32)
        if mask:
            arrays["alpha_mask" + suffix] = mask[0].astype(np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: given a path, numpy would add ".npz" to it
            np.savez(f, **arrays)

    # a lost rename only costs encoding that image again: no wait for the folder's sync
    write_file_atomic_with(path, write, sync_folder=False)


def _time_ids(sample: dict) -> torch.Tensor:
    """SDXL size conditioning: original (h, w), crop top-left, target (h, w)."""
    return torch.tensor(
        [*sample["original_size"], *sample["crop_top_left"], *sample["target_size"]], dtype=torch.float32
    )


@torch.no_grad()
def encode_latents(
    vae: torch.nn.Module,
    images: torch.Tensor,
    seeds: list[int] | None = None,
    *,
    latent_scale: float,
    device: torch.device | str,
) -> torch.Tensor:
    """Latents (a sample of the VAE's distribution) times latent_scale, in float32.

    With `seeds`, each image's sampling noise comes from its own CPU generator, so it is
    the same whichever images share the call; without, from the global generator.
    """
    dist = vae.encode(images.to(device=device, dtype=vae.dtype)).latent_dist
    generators = None if seeds is None else [torch.Generator().manual_seed(s) for s in seeds]
    return dist.sample(generator=generators).float() * latent_scale


def noise_seed(seed: int, index: int, flip: bool) -> int:
    """The seed of the VAE's sampling noise for one cached latent (image index, mirrored).

    Each latent draws its noise from its own generator, so it does not depend on which
    images shared its VAE call (`vae_batch_size`) or were read from disk before it.
    """
    return seed * 2**32 + 2 * index + int(flip)


def _encode_chunk(
    dataset: TrainDataset, encode: Encoder, chunk: list[tuple[int, bool]], seed: int
) -> list[tuple[tuple[int, bool], torch.Tensor, dict]]:
    """Load the images of `chunk` and encode those of one size per VAE call."""
    by_shape: dict[tuple[int, ...], list[tuple[tuple[int, bool], dict]]] = {}
    for index, flip in chunk:
        sample = dataset.load_unique(index, flip)
        if sample is not None:  # an unreadable image is left out (the dataset warned)
            by_shape.setdefault(tuple(sample["image"].shape), []).append(((index, flip), sample))
    out = []
    for group in by_shape.values():
        images = torch.stack([sample["image"] for _, sample in group])
        latents = encode(images, [noise_seed(seed, i, f) for (i, f), _ in group])
        out.extend((k, latent.float(), sample) for (k, sample), latent in zip(group, latents, strict=True))
    return out


def build_latent_cache(
    dataset: TrainDataset,
    encode: Encoder,
    *,
    latent_scale: float,
    flip: bool,
    to_disk: bool,
    vae_id: str = "",
    device: torch.device | str = "cpu",
    batch_size: int = 1,
    seed: int = 0,
    masks: dict[tuple[int, bool], torch.Tensor] | None = None,
    log: Callable[[str], None] = lambda message: None,
    warn: Callable[[str], None] = lambda message: None,
    shard: tuple[int, int] = (0, 1),
) -> CacheDict:
    """(image index, flipped) -> (latent in the training scale, time_ids), on `device`.

    encode(images [B, 3, H, W] in [-1, 1], one noise seed per image) -> latents times
    latent_scale. flip: also cache the mirrored image (flip_aug). to_disk: read and write
    `<image stem>.npz` files keyed by `vae_id` (see module docstring). batch_size: images
    of one bucket encoded per VAE call (`vae_batch_size`); the latents are those of one
    image at a time up to float rounding, since each draws its noise from `noise_seed`.
    Images that fail to load are left out (the dataset warns about them). `masks`
    (masked_loss, the dataset made with masked_loss): filled with each latent's loss mask
    [1, h, w] at the latent's size, kept on disk beside the latents. `shard` (rank,
    world): only the images whose index % world == rank (several processes each read or
    encode one share; the run exchanges them).
    """
    rank, world = shard
    mine = range(rank, len(dataset.images), max(1, world))
    with_masks = masks is not None
    flips = (False, True) if flip else (False,)
    cache: CacheDict = {}
    reused = written = 0
    disk_ok = to_disk
    log(
        f"Caching latents of {len(mine) * len(flips)} image(s)"
        + (f" (this process's share of {len(dataset.images) * len(flips)})" if world > 1 else "")
        + (" (reusing the .npz files next to the images where they are current)" if to_disk else "")
        + "..."
    )
    # Images whose file is current are read; the others wait, grouped by bucket (= image size).
    keys: dict[int, dict] = {}
    by_bucket: dict[tuple[int, int], list[tuple[int, bool]]] = {}
    for index in mine:
        item, choice = dataset.images[index]
        key = image_key(dataset, index, vae_id) if to_disk else {}
        if with_masks and to_disk:
            key["masked"] = True
        found = read_cache_file(cache_path(item.path), key, flips, with_masks) if to_disk else None
        if found is not None:
            for f, (latent, time_ids, *mask) in found.items():
                cache[(index, f)] = (
                    torch.from_numpy(latent).to(device) * latent_scale,
                    torch.from_numpy(time_ids),
                )
                if with_masks:
                    masks[(index, f)] = torch.from_numpy(mask[0]).to(device)
            reused += 1
            continue
        keys[index] = key
        by_bucket.setdefault(tuple(choice.bucket), []).extend((index, f) for f in flips)
    # Encode batch_size images of one bucket per VAE call; write each file once it is complete.
    made: dict[int, dict[bool, tuple[np.ndarray, ...]]] = {}
    firsts: dict[int, dict] = {}
    step = max(1, batch_size)
    for items in by_bucket.values():
        for start in range(0, len(items), step):
            for (index, f), latent, sample in _encode_chunk(
                dataset, encode, items[start : start + step], seed
            ):
                cache[(index, f)] = (latent.to(device), _time_ids(sample))
                mask = latent_mask(sample["mask"][None], latent.shape[-2:])[0] if with_masks else None
                if with_masks:
                    masks[(index, f)] = mask.to(device)
                if not disk_ok:
                    continue
                arrays = ((latent / latent_scale).cpu().numpy(), _time_ids(sample).numpy())
                made.setdefault(index, {})[f] = arrays + ((mask.numpy(),) if with_masks else ())
                firsts.setdefault(index, sample)
                if len(made[index]) != len(flips):
                    continue
                item, _ = dataset.images[index]
                try:
                    _write_for(cache_path(item.path), keys[index], made.pop(index), firsts.pop(index))
                    written += 1
                except OSError as exc:
                    disk_ok = False
                    warn(
                        f"cannot write the latent cache next to {item.path} ({exc.strerror or exc}); "
                        "the latents stay in memory for this run"
                    )
    if to_disk:
        log(f"Latent cache: {reused} image(s) reused from disk, {written} written.")
    return cache


def _write_for(path: Path, key: dict, latents: dict[bool, tuple[np.ndarray, ...]], first: dict) -> None:
    """write_cache_file with the sizes of the (unflipped) sample, in Kohya's (w, h) order."""
    (orig_h, orig_w), (top, left) = first["original_size"], first["crop_top_left"]
    target_h, target_w = first["target_size"]
    write_cache_file(path, key, latents, (orig_w, orig_h), (left, top, left + target_w, top + target_h))
