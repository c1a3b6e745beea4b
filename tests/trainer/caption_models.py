"""Tiny captioning models the caption tests build offline.

- `write_tiny_tagger(folder)`: a WD14-style tagger: an ONNX graph taking NHWC BGR 0-255
  images (8 x 8) that scores the mean colour (sigmoid of a linear map per tag), and its
  selected_tags.csv. Red images get "red", blue ones "blue"; "mychar_name" (character)
  scores 0.9 on every image, "green" and the rating stay low.
- `write_tiny_blip(folder)`: a random BLIP captioner with a 40-word tokenizer.
- `write_tiny_florence2(folder)`: a random Florence-2 with a byte-level BART tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# name, category, (weights on B, G, R), bias: probability = sigmoid(w . mean_bgr + b)
TAGS = [
    ("general", 9, (0.0, 0.0, 0.0), -3.0),
    ("red", 0, (0.0, 0.0, 0.05), -6.4),
    ("blue", 0, (0.05, 0.0, 0.0), -6.4),
    ("green", 0, (0.0, 0.05, 0.0), -6.4),
    ("mychar_name", 4, (0.0, 0.0, 0.0), 2.2),
]


def write_tiny_tagger(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    weights = np.array([w for _, _, w, _ in TAGS], dtype=np.float32).T  # 3 x tags
    bias = np.array([b for *_, b in TAGS], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input_1:0"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["mean", "w"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
        ],
        "tiny_tagger",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["batch", 8, 8, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["batch", len(TAGS)])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    rows = ["tag_id,name,category,count"] + [f"{i},{n},{c},100" for i, (n, c, _, _) in enumerate(TAGS)]
    (folder / "selected_tags.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def write_tiny_blip(folder: Path) -> Path:
    """A random BLIP captioner (vision 32 px, 2 layers) with its processor, saved offline."""
    import torch
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + [f"w{i}" for i in range(34)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), bos_token="[DEC]")
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = BlipConfig(
        vision_config={**small, "image_size": 32, "patch_size": 16},
        text_config={
            **small,
            "vocab_size": len(words),
            "bos_token_id": 5,
            "sep_token_id": 3,
            "pad_token_id": 0,
        },
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    image = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def write_tiny_florence2(folder: Path) -> Path:
    """A random Florence-2 (DaViT 2 stages, BART 1+1 layers) with a byte-level tokenizer, offline."""
    import json

    import torch
    from transformers import (
        BartTokenizerFast,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *bytes_to_unicode().values(), "<mask>", "<image>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = BartTokenizerFast(vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"})
    vision = {
        "depths": [1, 1], "patch_size": [7, 3], "patch_stride": [4, 2], "patch_padding": [3, 1],
        "patch_prenorm": [False, True], "embed_dim": [16, 32], "num_heads": [2, 2], "num_groups": [2, 2],
        "window_size": 2, "projection_dim": 32, "max_position_embeddings": 50, "drop_path_rate": 0.0,
    }  # fmt: skip
    text = {
        "vocab_size": len(tokenizer), "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
        "encoder_attention_heads": 2, "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
        "max_position_embeddings": 128, "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2,
        "decoder_start_token_id": 2,
    }  # fmt: skip
    config = Florence2Config(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id)
    torch.manual_seed(0)
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    image = CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    image.image_seq_length = 17  # (32 / 8) ** 2 patches + the pooled one
    Florence2Processor(image_processor=image, tokenizer=tokenizer).save_pretrained(folder)
    return folder
