"""The captioning models: a WD14-style tagger (ONNX, through onnxruntime) and image-to-text
models (BLIP, Florence-2, through transformers), fetched from Hugging Face on first use.

A model is a local folder or a Hugging Face id; an id is looked up in the Hugging Face
cache first and downloaded only when missing (huggingface_hub's progress bars show). None
of this runs at import: onnxruntime, transformers and huggingface_hub load on use.

WD14 taggers (SmilingWolf/wd-*) are a `model.onnx` taking NHWC float32 images (BGR,
0-255, padded white to a square) and giving a probability per row of `selected_tags.csv`
(columns tag_id, name, category, count; category 9 = rating, 4 = character, 0 = general).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.tools.lora_io import ToolError

DEFAULT_MODELS = {
    "wd14": "SmilingWolf/wd-v1-4-convnext-tagger-v2",
    "blip": "Salesforce/blip-image-captioning-large",
    "florence2": "florence-community/Florence-2-large",
}
WD14_FILES = ("model.onnx", "selected_tags.csv")
# What transformers loads of a captioner's repository (never its .bin / ONNX / Flax copies).
TRANSFORMERS_FILES = ("*.json", "*.txt", "*.model", "*.safetensors")
RATING, GENERAL, CHARACTER = 9, 0, 4


def model_folder(model: str, files: list[str] | None, endpoint: str | None = None) -> Path:
    """The local folder of `model` (a folder, or a Hugging Face id fetched into the cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        missing = [f for f in files or [] if "*" not in f and not (path / f).is_file()]
        if missing:
            raise ToolError(f"--model {path} lacks {', '.join(missing)}; give the folder that holds them.")
        return path
    from huggingface_hub import snapshot_download

    from trainer.models.hub import HUB_ID

    if not HUB_ID.match(model):
        raise ToolError(f"--model {model} is neither a folder nor a Hugging Face id (owner/name).")
    patterns = list(files) if files else None
    try:
        return Path(snapshot_download(model, allow_patterns=patterns, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache yet: download it
        pass
    try:
        return Path(snapshot_download(model, allow_patterns=patterns, endpoint=endpoint))
    except Exception as err:  # noqa: BLE001 - every failure becomes a message for the user
        raise ToolError(
            f"--model {model} could not be downloaded from Hugging Face ({type(err).__name__}: {err}). "
            "Is this machine online? Or give a local folder with the model."
        ) from None


@dataclass
class Tag:
    name: str
    category: int


class Wd14Tagger:
    """Tags of an image with their probabilities, from a WD14-style ONNX tagger."""

    def __init__(self, folder: Path, device: str | None = None):
        import onnxruntime as ort

        with open(folder / "selected_tags.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        try:
            self.tags = [Tag(r["name"], int(r["category"])) for r in rows]
        except (KeyError, ValueError) as err:
            raise ToolError(f"{folder / 'selected_tags.csv'} is not a tagger's tag list ({err}).") from None
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(folder / "model.onnx"), providers=providers)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
            raise ToolError(f"{folder / 'model.onnx'} cannot be loaded by onnxruntime ({err}).") from None
        entry = self.session.get_inputs()[0]
        self.input_name, self.size = entry.name, int(entry.shape[1])
        outputs = int(self.session.get_outputs()[0].shape[-1])
        if outputs != len(self.tags):
            raise ToolError(
                f"{folder}: the model gives {outputs} tags but selected_tags.csv lists {len(self.tags)}."
            )

    def _prepare(self, image: Any) -> Any:
        import numpy as np
        from PIL import Image

        image = image.convert("RGB")
        side = max(image.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        square = square.resize((self.size, self.size), Image.Resampling.BICUBIC)
        return np.asarray(square, dtype=np.float32)[:, :, ::-1]  # RGB -> BGR

    def __call__(self, images: list[Any]) -> list[dict[str, tuple[float, int]]]:
        """Per image: {tag name: (probability, category)}."""
        import numpy as np

        batch = np.stack([self._prepare(im) for im in images])
        probs = self.session.run(None, {self.input_name: batch})[0]
        return [
            {t.name: (float(p), t.category) for t, p in zip(self.tags, row, strict=True)} for row in probs
        ]


class TextCaptioner:
    """One sentence per image from BLIP or Florence-2 (transformers)."""

    def __init__(self, method: str, folder: Path, device: str | None, max_length: int):
        import torch
        from transformers import AutoProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.method, self.max_length = method, max_length
        try:
            self.processor = AutoProcessor.from_pretrained(folder)
            if method == "blip":
                from transformers import BlipForConditionalGeneration as Model
            else:
                from transformers import Florence2ForConditionalGeneration as Model
            self.model = Model.from_pretrained(folder).to(self.device).eval()
        except (OSError, ValueError, KeyError) as err:
            raise ToolError(
                f"--model {folder} is not a {method} model transformers can load ({err})."
            ) from None

    def __call__(self, images: list[Any]) -> list[str]:
        import torch

        images = [im.convert("RGB") for im in images]
        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if self.method == "florence2":
            kwargs["text"] = ["<DETAILED_CAPTION>"] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_length, num_beams=1, do_sample=False)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()).strip() for t in texts]
