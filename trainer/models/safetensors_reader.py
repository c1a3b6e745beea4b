"""A .safetensors file read one tensor at a time with plain file reads (no memory map)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from trainer.models.errors import ModelLoadError

Tensor = torch.Tensor

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class SafetensorsReader:
    """Reads one tensor at a time with plain file reads, never a memory map.

    A memory-mapped checkpoint stays resident in the process while it is open (the pages
    it touched count in its memory, 2-4 GB for SD1.5, 7 GB for SDXL), on top of the
    weights being built from it; reading each tensor into its own buffer keeps the peak
    of loading at the weights plus one tensor. A float32 tensor read for a float32 model
    is used as read, without a copy.
    """

    def __init__(self, path: Path):
        self.path = path
        self._file = path.open("rb")
        try:
            (length,) = struct.unpack("<Q", self._file.read(8))
            header = json.loads(self._file.read(length).decode("utf-8"))
            header.pop("__metadata__", None)
            self._entries = {
                name: (
                    DTYPES[entry["dtype"]],
                    tuple(int(n) for n in entry["shape"]),
                    8 + length + int(entry["data_offsets"][0]),
                    8 + length + int(entry["data_offsets"][1]),
                )
                for name, entry in header.items()
            }
        except (
            OSError,
            struct.error,
            ValueError,
            UnicodeDecodeError,
            KeyError,
            TypeError,
            IndexError,
        ) as err:
            self._file.close()
            raise ModelLoadError(f"{path} cannot be read ({err!r}); download it again.") from err
        self.shapes = {name: shape for name, (_, shape, _, _) in self._entries.items()}

    def get(self, name: str) -> Tensor:
        dtype, shape, start, end = self._entries[name]
        buffer = torch.empty(end - start, dtype=torch.uint8)
        self._file.seek(start)
        if end > start and self._file.readinto(memoryview(buffer.numpy())) != end - start:
            raise ModelLoadError(
                f"{self.path} ends inside {name}; the file is incomplete. Download it again."
            )
        return buffer.view(dtype).reshape(shape)

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
