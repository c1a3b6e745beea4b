"""The latent cache: each image encoded by the VAE once, in memory or on disk.

`cache_latents` encodes every unique image once before training (and its mirror image
with `flip_aug`), not once per repeat and epoch. `cache_latents_to_disk` also keeps each
image's latents in `<image stem>.npz` next to the image, as Kohya does, so the next run
skips the VAE for images it has seen.

A latent on disk is used only when it is still the latent of this image, in this
bucket, by this VAE: every file carries a key (the image's size and SHA-256, its bucket
and resized size, the VAE's fingerprint, the cache format) and a file whose key differs,
or that lacks the mirrored latent a flip_aug run needs, or that cannot be read, is
rebuilt. Files are plain .npz arrays (read with allow_pickle=False, never pickle), written
to a temp file and renamed, so an interrupted run never leaves half a file.

The .npz holds `latents` (C, H, W; float32, before the VAE scaling factor, as Kohya
stores it), `latents_flipped` with flip_aug, `original_size` (w, h), `crop_ltrb`, plus our
`time_ids`, `time_ids_flipped` (SDXL size conditioning) and `cache_key`.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainer.data.dataset import TrainDataset

CACHE_FORMAT = 1  # raise when the image pipeline or the file layout changes
_SAMPLE_PER_TENSOR = 4096

CacheDict = dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]]


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
    return {"format": CACHE_FORMAT, "image_bytes": path.stat().st_size,
            "image_sha256": file_sha256(path), "bucket": list(choice.bucket),
            "resized": list(choice.resized), "vae": vae_id}


def read_cache_file(path: Path, key: dict, flips: tuple[bool, ...]) -> dict[bool, tuple[np.ndarray, np.ndarray]] | None:
    """{flip: (unscaled latent, time_ids)} from a cache file whose key matches, else None.

    None also for a missing, unreadable or foreign (e.g. Kohya's own) file: it is rebuilt.
    """
    if not path.is_file():
        return None
    names = {False: ("latents", "time_ids"), True: ("latents_flipped", "time_ids_flipped")}
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "cache_key" not in npz.files or json.loads(str(npz["cache_key"])) != key:
                return None
            if any(names[f][0] not in npz.files for f in flips):
                return None
            out = {f: (np.array(npz[names[f][0]], dtype=np.float32),
                       np.array(npz[names[f][1]], dtype=np.float32)) for f in flips}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    bucket_w, bucket_h = key["bucket"]
    for latent, _ in out.values():
        if latent.ndim != 3 or latent.shape[1] * 8 != bucket_h or latent.shape[2] * 8 != bucket_w:
            return None
    return out


def write_cache_file(path: Path, key: dict, latents: dict[bool, tuple[np.ndarray, np.ndarray]],
                     original_size: tuple[int, int], crop_ltrb: tuple[int, int, int, int]) -> None:
    """Write the cache file atomically (temp file + rename). Raises OSError."""
    arrays: dict[str, np.ndarray] = {
        "cache_key": np.array(json.dumps(key, sort_keys=True)),
        "original_size": np.array(original_size, dtype=np.int64),
        "crop_ltrb": np.array(crop_ltrb, dtype=np.int64),
    }
    for flip, (latent, time_ids) in latents.items():
        suffix = "_flipped" if flip else ""
        arrays["latents" + suffix] = latent.astype(np.float32)
        arrays["time_ids" + suffix] = time_ids.astype(np.float32)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _time_ids(sample: dict) -> torch.Tensor:
    """SDXL size conditioning: original (h, w), crop top-left, target (h, w)."""
    return torch.tensor([*sample["original_size"], *sample["crop_top_left"],
                         *sample["target_size"]], dtype=torch.float32)


def build_latent_cache(
    dataset: TrainDataset,
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    latent_scale: float,
    flip: bool,
    to_disk: bool,
    vae_id: str = "",
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = lambda message: None,
    warn: Callable[[str], None] = lambda message: None,
) -> CacheDict:
    """(image index, flipped) -> (latent in the training scale, time_ids), on `device`.

    encode: a batch of images [B, 3, H, W] in [-1, 1] -> latents times latent_scale.
    flip: also cache the mirrored image (flip_aug). to_disk: read and write
    `<image stem>.npz` files keyed by `vae_id` (see module docstring). Images that fail
    to load are left out (the dataset warns about them).
    """
    flips = (False, True) if flip else (False,)
    cache: CacheDict = {}
    reused = written = 0
    disk_ok = to_disk
    log(f"Caching latents of {len(dataset.images) * len(flips)} image(s)"
        + (" (reusing the .npz files next to the images where they are current)" if to_disk else "")
        + "...")
    for index in range(len(dataset.images)):
        item, _ = dataset.images[index]
        path = cache_path(item.path)
        key = image_key(dataset, index, vae_id) if to_disk else {}
        found = read_cache_file(path, key, flips) if to_disk else None
        if found is not None:
            for f, (latent, time_ids) in found.items():
                cache[(index, f)] = (torch.from_numpy(latent).to(device) * latent_scale,
                                     torch.from_numpy(time_ids))
            reused += 1
            continue
        made: dict[bool, tuple[np.ndarray, np.ndarray]] = {}
        first: dict | None = None
        for f in flips:
            sample = dataset.load_unique(index, f)
            if sample is None:
                break
            first = first or sample
            latent = encode(sample["image"][None])[0].float()
            cache[(index, f)] = (latent.to(device), _time_ids(sample))
            made[f] = ((latent / latent_scale).cpu().numpy(), _time_ids(sample).numpy())
        if not disk_ok or first is None or len(made) != len(flips):
            continue
        (orig_h, orig_w), (top, left) = first["original_size"], first["crop_top_left"]
        target_h, target_w = first["target_size"]
        try:
            write_cache_file(path, key, made, (orig_w, orig_h), (left, top, left + target_w, top + target_h))
            written += 1
        except OSError as exc:
            disk_ok = False
            warn(f"cannot write the latent cache next to {item.path} ({exc.strerror or exc}); "
                 "the latents stay in memory for this run")
    if to_disk:
        log(f"Latent cache: {reused} image(s) reused from disk, {written} written.")
    return cache
