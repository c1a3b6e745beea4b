"""Preview images made with the LoRA while it trains (the Samples tab).

`Sampler.sample` builds a diffusers pipeline from the loaded model's own components (the
U-Net and text encoders carry the LoRA, so the images show what the LoRA has learned so
far), encodes the prompts exactly as training encodes captions (clip_skip, long prompts
in 75-token chunks: `trainer.text.conditioning`), runs it in eval mode under no_grad with the sampler
the user chose, writes PNGs to
`<output_dir>/sample/` named as sd-scripts names them
(`<output_name>_<step:06d>_<index:02d>_<YYYYmmddHHMMSS>.png`, `_e<epoch:06d>_` for epoch
samples) and reports each as an Event("sample"). Afterwards every module is back in the
mode and on the device it was in, and the random state of training is untouched, so a
run with samples trains exactly like one without.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from trainer.events import Event, EventCallback
from trainer.sampling.prompts import SamplePrompt, sample_size
from trainer.text.conditioning import TextConditioner

# sampler name -> (diffusers scheduler class name, extra config); "k_" names are aliases.
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmsolver": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver"}),
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmsingle": ("DPMSolverSinglestepScheduler", {}),
}


# samplers whose diffusers scheduler needs an optional package
_NEEDS = {"lms": "scipy"}


def sampler_problem(name: str) -> str | None:
    """Why a sampler cannot run here (a missing optional package), or None."""
    import importlib.util

    package = _NEEDS.get(name.lower().removeprefix("k_"))
    if package and importlib.util.find_spec(package) is None:
        return (
            f"the {name} sampler needs the {package} package: run `pip install {package}` "
            "in .venv, or choose euler_a"
        )
    return None


def make_scheduler(name: str, training_config: dict):
    """The inference scheduler for a sampler name, on the model's training noise schedule
    (so prediction type and betas match). Raises ValueError for an unknown name."""
    import diffusers

    key = name.lower().removeprefix("k_")
    if key not in SCHEDULERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    class_name, extra = SCHEDULERS[key]
    # steps_offset 1 and no sample clipping: the inference settings SD models ship with
    return getattr(diffusers, class_name).from_config(
        dict(training_config), steps_offset=1, clip_sample=False, **extra
    )


def sample_file_name(output_name: str, index: int, *, step: int, epoch: int | None = None) -> str:
    """`<name>_<step:06d>_<index:02d>_<time>.png`, or `<name>_e<epoch:06d>_...` for an epoch."""
    when = f"e{epoch:06d}" if epoch is not None else f"{step:06d}"
    return f"{output_name}_{when}_{index:02d}_{time.strftime('%Y%m%d%H%M%S')}.png"


def build_pipeline(m, sampler: str):
    """A diffusers pipeline (SD or SDXL) on the loaded model `m` (SDModels), with the
    sampler's scheduler; used by the previews and the comparison grid."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = make_scheduler(sampler, m.noise_scheduler.config)
    if m.arch == "sdxl":
        pipe = StableDiffusionXLPipeline(
            vae=m.vae,
            text_encoder=m.text_encoders[0],
            text_encoder_2=m.text_encoders[1],
            tokenizer=m.tokenizers[0],
            tokenizer_2=m.tokenizers[1],
            unet=m.unet,
            scheduler=scheduler,
        )
    else:
        pipe = StableDiffusionPipeline(
            vae=m.vae,
            text_encoder=m.text_encoders[0],
            tokenizer=m.tokenizers[0],
            unet=m.unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


class Sampler:
    """Makes the preview images of a run from its loaded models.

    models: SDModels (arch, unet, vae, text_encoders, tokenizers, noise_scheduler).
    network: the LoRA network (switched to eval while sampling: no dropouts).
    autocast: a factory of the run's autocast context (mixed precision).
    """

    def __init__(
        self,
        models,
        network,
        prompts: list[SamplePrompt],
        *,
        sampler: str,
        output_dir: str | Path,
        output_name: str,
        resolution: tuple[int, int],
        seed: int,
        clip_skip: int,
        device: torch.device,
        emit: EventCallback,
        max_token_length: int = 75,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ):
        self.models, self.network, self.prompts = models, network, prompts
        self.sampler, self.resolution, self.seed = sampler, resolution, seed
        self.device, self.emit, self.autocast = device, emit, autocast
        self.text = TextConditioner(
            models.tokenizers,
            models.text_encoders,
            arch=models.arch,
            clip_skip=clip_skip,
            max_token_length=max_token_length,
            weighted=True,
        )  # (word:1.2) in prompts, as Kohya's sampler
        self.folder = Path(output_dir) / "sample"
        self.output_name = output_name
        make_scheduler(sampler, models.noise_scheduler.config)  # fail early on a bad name

    def _pipeline(self):
        return build_pipeline(self.models, self.sampler)

    @contextlib.contextmanager
    def _inference_state(self):
        """Eval mode, every part on the device, the training RNG saved; all restored after."""
        m = self.models
        modules = [m.unet, m.vae, *m.text_encoders, self.network]
        modes = [module.training for module in modules]
        devices = [next(module.parameters()).device for module in (m.vae, *m.text_encoders)]
        rng_devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=rng_devices), torch.no_grad():
                for module in modules:
                    module.eval()
                for module in (m.vae, *m.text_encoders):
                    module.to(self.device)
                yield
        finally:
            for module, mode in zip(modules, modes, strict=True):
                module.train(mode)
            for module, device in zip((m.vae, *m.text_encoders), devices, strict=True):
                module.to(device)

    def sample(self, step: int, epoch: int | None = None) -> list[Path]:
        """Make one image per prompt; returns the written files (each also an event)."""
        if not self.prompts:
            return []
        self.folder.mkdir(parents=True, exist_ok=True)
        paths = []
        with self._inference_state():
            pipe = self._pipeline()
            for index, prompt in enumerate(self.prompts):
                paths.append(self._one(pipe, index, prompt, step, epoch))
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return paths

    def _decode(self, pipe, latents: torch.Tensor):
        """Latents -> PIL image, outside autocast: the SDXL VAE overflows in fp16 (black
        samples), so it decodes in its own dtype, and an fp16 VAE that asks for it in fp32."""
        vae = self.models.vae
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        try:
            if upcast:
                vae.to(torch.float32)
            with torch.autocast(self.device.type, enabled=False):
                scaled = latents.to(vae.dtype) / vae.config.scaling_factor
                image = vae.decode(scaled).sample
        finally:
            if upcast:
                vae.to(torch.float16)
        return pipe.image_processor.postprocess(image.float(), output_type="pil")[0]

    def _one(self, pipe, index: int, prompt: SamplePrompt, step: int, epoch: int | None) -> Path:
        from PIL.PngImagePlugin import PngInfo

        width, height = sample_size(prompt, self.resolution)
        seed = prompt.seed if prompt.seed is not None else self.seed + index
        steps = min(max(1, prompt.steps), 1000)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with self.autocast():
            hidden, pooled = self.text.encode([prompt.prompt])
            negative, negative_pooled = self.text.encode([prompt.negative])
            embeds = {"prompt_embeds": hidden, "negative_prompt_embeds": negative}
            if pooled is not None:
                embeds.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
            latents = pipe(
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=prompt.scale,
                generator=generator,
                output_type="latent",
                **embeds,
            ).images
        image = self._decode(pipe, latents)
        info = PngInfo()
        info.add_text(
            "parameters",
            f"{prompt.prompt}\nNegative prompt: {prompt.negative}\n"
            f"Steps: {steps}, Sampler: {self.sampler}, CFG scale: {prompt.scale}, "
            f"Seed: {seed}, Size: {width}x{height}, Training step: {step}",
        )
        path = self.folder / sample_file_name(self.output_name, index, step=step, epoch=epoch)
        image.save(path, pnginfo=info)
        self.emit(
            Event(
                "sample",
                {"path": str(path), "prompt": prompt.prompt, "step": step, "epoch": epoch, "index": index},
            )
        )
        return path
