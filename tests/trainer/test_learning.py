"""The trained LoRA really learns: held-out denoising loss falls against the base model."""

import json

import torch

from tests.helpers import make_toy_dataset, write_preset
from trainer.__main__ import main
from trainer.models import load_models
from trainer.network import LoRANetwork
from trainer.text.conditioning import TextConditioner


def _eval_loss(m, latents, cond) -> float:
    """Denoising loss at fixed timesteps and noise that training never drew."""
    g = torch.Generator().manual_seed(12345)
    total = 0.0
    ts = [100, 300, 500, 700, 900]
    for t in ts:
        noise = torch.randn(latents.shape, generator=g)
        tt = torch.full((latents.shape[0],), t)
        noisy = m.noise_scheduler.add_noise(latents, noise, tt)
        with torch.no_grad():
            pred = m.unet(noisy, tt, cond.expand(latents.shape[0], -1, -1)).sample
        total += torch.nn.functional.mse_loss(pred, noise).item()
    return total / len(ts)


def test_trained_lora_lowers_the_denoising_loss(tiny_model, tmp_path):
    data = make_toy_dataset(tmp_path / "data", n=4)
    preset = write_preset(
        tmp_path,
        tiny_model("sd15"),
        data,
        epoch=12,
        save_every_n_epochs=100,
        network_dim=8,
        network_alpha=8,
        learning_rate=5e-3,
        unet_lr=5e-3,
        network_train_unet_only=True,
        output_name="learn",
    )
    assert main(["--config", str(preset)]) == 0
    cfg = json.loads(preset.read_text())

    m = load_models(cfg["pretrained_model_name_or_path"])
    images = sorted((data / "1_toy").glob("*.png"))
    from trainer.data.dataset import to_tensor
    from trainer.data.images import load_rgb

    pixels = torch.stack([to_tensor(load_rgb(p)) for p in images])
    with torch.no_grad():
        latents = m.vae.encode(pixels).latent_dist.mode() * m.latent_scale
        cond, _ = TextConditioner(m.tokenizers, m.text_encoders, arch="sd1").encode(["toy, red square"])
    base = _eval_loss(m, latents, cond)

    net = LoRANetwork(m.unet, m.text_encoders, arch="sd1", rank=8, alpha=8, train_text_encoder=False)
    net.apply_to()
    net.load_kohya_weights(str(tmp_path / "out" / "learn.safetensors"))
    trained = _eval_loss(m, latents, cond)
    assert trained < 0.8 * base, (trained, base)
