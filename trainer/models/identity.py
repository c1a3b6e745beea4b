"""Which weights a base model path holds, told apart in a second (no torch, no full read).

A training state records this (trainer.run.state's fingerprint) so that a resume with
another model in a folder or file of the same name is refused. Two fine-tunes of one
architecture have the same file names, sizes and tensor layout, so the layout alone
cannot tell them apart: the digest reads the first MiB of each weight file (the
safetensors header and the first tensors) and 16 slices spread over the rest, with the
file sizes and the folder's config files. A moved or renamed copy of the same weights
has the same digest.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from trainer.models.detect import ModelLoadError, detect_model

_HEAD = 1 << 20  # the safetensors header and the first tensors
_SLICE = 64 << 10
_SLICES = 16
_WEIGHTS = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def _files(root: Path) -> list[Path]:
    """The weight and config files of a model folder, in a fixed order (hidden ones left out)."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(folder) / n
            for n in sorted(names)
            if not n.startswith(".") and n.lower().endswith((*_WEIGHTS, ".json"))
        ]
    return found


def _sample(path: Path, size: int, update: Callable[[bytes], object]) -> None:
    """Feed the head of the file and slices spread over the rest to `update` (a digest's)."""
    with open(path, "rb") as f:
        update(f.read(_HEAD))
        if size <= _HEAD:
            return
        for i in range(1, _SLICES + 1):
            f.seek(_HEAD + (size - _HEAD - _SLICE) * i // _SLICES)
            update(f.read(_SLICE))


@functools.lru_cache(maxsize=16)
def _identity(path: str, signature: tuple) -> dict:
    """`signature`: each file's path, size and modification time (a changed file reads again)."""
    digest = hashlib.sha256()
    root = Path(path)
    total = 0
    for name, size, _ in signature:
        file = root / name if name else root
        digest.update(f"{name}\0{size}\0".encode())
        _sample(file, size, digest.update)
        if not name or name.lower().endswith(_WEIGHTS):
            total += size
    return {"bytes": total, "weights": digest.hexdigest()[:16]}


def model_identity(path: str) -> dict:
    """{"name", "bytes", "weights"} of a local model file or folder (a Hugging Face id is
    read from its local cache); {"name"} alone where nothing can be read."""
    text = path.strip()
    out: dict = {"name": os.path.basename(os.path.normpath(text)) or text}
    local = Path(text).expanduser()
    if not local.exists():
        try:
            local = Path(detect_model(text).local_path or text)
        except ModelLoadError:
            return out
    try:
        if local.is_file():
            stat = local.stat()
            signature: tuple = (("", stat.st_size, stat.st_mtime_ns),)
        elif local.is_dir():
            signature = tuple(
                (f.relative_to(local).as_posix(), (s := f.stat()).st_size, s.st_mtime_ns)
                for f in _files(local)
            )
        else:
            return out
        return {**out, **_identity(str(local.resolve()), signature)}
    except OSError:
        return out
