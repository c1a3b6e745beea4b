"""One training step of the configured run on shape-only tensors, measured: the estimate's engine.

`measure_step` builds the run the way `trainer.run.train.Run.prepare` does, with the
Run's own methods: `_load_models` (load dtype, SDXL's fp32 VAE under fp16, attention
processor, gradient checkpointing, mem_eff_attn, fp8_base), `_make_network` (the LoRA or
LyCORIS network, its dtype, text-encoder checkpointing) and `_make_optimizer` (groups,
LoRA+, the optimizer by Kohya name, the schedule). Only the data phase is replaced
(`_make_fake_data`): one batch of the largest bucket, the caches the run would build
(each made by the run's own encoders, once, as the cache phase does), and the encoders a
cache leaves behind taken off the GPU as the run does. Then the Run's `step_loss`
(noise, timesteps, text conditioning, U-Net under autocast, loss and its weights),
backward and `optimizer_step` (clip, step, schedule, zero_grad) run on that batch.

Everything runs on the meta device (shapes and dtypes, no memory, no arithmetic) under
`CudaOnMeta` (the run's device "cuda" is the meta device; CUDA's attention kernels),
`CudaAutocast` (the GPU's autocast dtypes) and `_cuda_optimizers` (fused AdamW as on a GPU,
bitsandbytes' state layout); `MemoryTracker` counts the live bytes and FlopCounterMode the
step's FLOPs. Nothing reads a weight. Not modelled: torch_compile and channels_last (off
by default), xformers (counted as SDPA, which tiles attention the same way), the fp16
grad scaler's few scalars, DataLoader workers (host memory).

Coupling: this calls the Run's private phase methods by name, so a refactor of
trainer/run/train.py that renames them breaks tests/trainer/test_estimate.py at once
(never silently: the estimate then fails with an AttributeError naming the method).

Imports torch, trainer.run (the Run it extends), trainer.data, trainer.optim, trainer.text.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from trainer.estimate.autocast import CudaAutocast, checkpoint_under_modes
from trainer.estimate.fake_models import ModelConfigs, build_fake_models, load_dtype
from trainer.estimate.standins import CudaOnMeta, bnb_stand_in
from trainer.estimate.tracker import MemoryTracker, PeakSplit
from trainer.run.train import Run

_PATCHES = threading.Lock()  # two library doors are swapped while an optimizer is built (_cuda_optimizers)


@dataclass
class StepMeasure:
    """What one fake step allocated and computed (bytes, FLOPs, ops)."""

    setup_peak: int  # loading, LoRA, caches being built (VAE / text encoders still on the GPU)
    setup_split: PeakSplit | None  # setup_peak by kind (weights; the rest the encoders' work)
    step_peak: int  # a training step once the optimizer state exists (what every later step needs)
    split: PeakSplit  # step_peak by kind
    peak_phase: str  # "forward", "backward" or "optimizer"
    flops: int  # forward + backward (+ recomputation with gradient checkpointing)
    ops: int  # operations dispatched in the step (each at least one kernel launch on a GPU)
    bytes_written: int  # bytes of every tensor the step made: a floor for its memory traffic
    trainable_params: int
    latent_bytes: int  # one cached latent (+ SDXL size ids), kept in host memory
    text_bytes: int  # one cached caption's encoder outputs, kept in host memory
    notes: list[str]


class _Accelerator:
    """What the Run uses of accelerate's Accelerator, for one GPU with `mixed_precision`."""

    num_processes, process_index, is_main_process, scaler = 1, 0, True, None

    def __init__(self, mixed_precision: str) -> None:
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision)
        self.cuda_autocast = CudaAutocast(dtype) if dtype else None

    def autocast(self):
        return self.cuda_autocast or contextlib.nullcontext()

    def prepare(self, optimizer):
        return optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, params, max_norm: float):
        """What clip_grad_norm_ allocates on CUDA (one norm per gradient, their total); its
        arithmetic is skipped: the meta device's per-tensor norm is slow and changes no shape."""
        grads = [p.grad for p in params if p.grad is not None]
        norms = [torch.empty((), dtype=torch.float32, device=g.device) for g in grads]
        return torch.stack(norms).sum() if norms else torch.zeros(())


class EstimateRun(Run):
    """A Run whose data phase is one fake batch (see the module docstring)."""

    def __init__(self, cfg: Any, tracker: MemoryTracker, total_steps: int) -> None:
        self.cfg, self.tracker = cfg, tracker
        self.plan = SimpleNamespace(total_steps=max(1, total_steps), epochs=1)
        self.emit = lambda event: None
        self.stop = threading.Event()
        self.acc = _Accelerator(cfg.mixed_precision)
        self.device = torch.device("cuda")

    def setup(self, models, bucket: tuple[int, int]) -> None:
        """Run.prepare's phases, in its order (speed options aside: see the estimate's notes)."""
        self._load_models(models)
        self._make_network()
        for module in (self.models.unet, *self.models.text_encoders):  # recomputation as the forward
            checkpoint_under_modes(module)
        self._make_fake_data(bucket)
        self._make_optimizer()

    def _make_fake_data(self, bucket: tuple[int, int]) -> None:
        """RunData._make_data's caches for one batch of `bucket` (width, height)."""
        from trainer.text.conditioning import TextConditioner

        cfg, m = self.cfg, self.models
        self.text = TextConditioner(
            m.tokenizers,
            m.text_encoders,
            arch=m.arch,
            clip_skip=cfg.clip_skip,
            max_token_length=cfg.max_token_length,
            weighted=cfg.weighted_captions,
        )
        self.bucket, self.batch_size = bucket, max(1, int(cfg.train_batch_size))
        self.captions = [f"a photo of sks {i}" for i in range(self.batch_size)]
        # the run's rules (RunData._make_data): which caches exist
        from trainer.run.data import caches_latents, caches_text

        use_cache, cache_text = caches_latents(cfg), caches_text(cfg, self.train_te)
        w, h = bucket
        self.mask_cache = {} if cfg.masked_loss else None
        self.latent_cache, self.latent_bytes = None, 0
        if use_cache:
            self.latent_cache = self._fake_latent_cache(w, h)
        self.text_cache, self.text_bytes = None, 0
        if cache_text:
            self.dataset = SimpleNamespace(images=[(SimpleNamespace(caption=c), None) for c in self.captions])
            self.text_cache = self._cache_text()  # the run's own: the encoders, no grad
            hidden, pooled = self.text_cache[self.captions[0]]
            self.text_bytes = hidden.nbytes + (0 if pooled is None else pooled.nbytes)
            if not self.train_te:
                self.tracker.release(_tensors(*m.text_encoders))  # moved to the CPU
        if self.latent_cache is not None:
            self.tracker.release(_tensors(m.vae))

    def _fake_latent_cache(self, w: int, h: int) -> dict:
        """One VAE call of the cache phase (vae_batch_size images), as the cache keeps them."""
        from trainer.data.latent_cache import encode_latents

        n = max(1, int(self.cfg.vae_batch_size or 1))
        with torch.no_grad():
            images = torch.zeros(n, 3, h, w, device="cuda")
            latents = encode_latents(
                self.models.vae, images, latent_scale=self.models.latent_scale, device="cuda"
            )
        time_ids = torch.tensor([h, w, 0, 0, h, w], dtype=torch.float32)
        cache = {(i, False): (latents[i % n].clone(), time_ids.clone()) for i in range(self.batch_size)}
        if self.mask_cache is not None:
            for key in cache:
                self.mask_cache[key] = torch.ones(1, h // 8, w // 8)
        self.latent_bytes = latents[0].nbytes + time_ids.nbytes
        return cache

    def fake_batch(self) -> dict:
        """A collated batch of the largest bucket (trainer.data.dataset.collate's keys)."""
        from trainer.data.dataset import collate

        w, h = self.bucket
        samples = []
        for i, caption in enumerate(self.captions):
            sample = {"caption": caption, "is_reg": False, "index": i, "image_index": i, "flipped": False}
            if self.latent_cache is None:
                sample.update(image=torch.zeros(3, h, w), original_size=(h, w), crop_top_left=(0, 0))
                sample["target_size"] = (h, w)
                if self.cfg.masked_loss:
                    sample["mask"] = torch.ones(1, h, w)
            samples.append(sample)
        return collate(samples)

    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.params if p.requires_grad]


def _tensors(*modules: torch.nn.Module) -> list[torch.Tensor]:
    return [t for m in modules for t in (*m.parameters(), *m.buffers())]


@contextlib.contextmanager
def _cuda_optimizers(optimizer: str):
    """Optimizers as they are built for a GPU: torch's fused kernels accept the meta device
    (they have meta kernels), bitsandbytes' optimizers are their state-layout stand-ins."""
    from torch.optim import optimizer as torch_optimizer

    from trainer.config.rules.optimizer_args import BITSANDBYTES
    from trainer.optim import optimizers

    with _PATCHES:  # one estimate at a time in a process
        devices, bnb = torch_optimizer._get_fused_kernels_supported_devices, optimizers._bnb
        torch_optimizer._get_fused_kernels_supported_devices = lambda: [*devices(), "meta"]
        if optimizer in BITSANDBYTES:
            optimizers._bnb = bnb_stand_in
        try:
            yield
        finally:
            torch_optimizer._get_fused_kernels_supported_devices, optimizers._bnb = devices, bnb


def measure_step(cfg: Any, mc: ModelConfigs, bucket: tuple[int, int], total_steps: int = 1000) -> StepMeasure:
    """Build the run on meta tensors and run one step of `bucket` (width, height); see above."""
    cfg = replace_for_estimate(cfg)
    tracker = MemoryTracker(device_type="meta")
    shim = CudaOnMeta("meta", on_host=lambda t: tracker.release([t]))
    notes: list[str] = []
    with _quiet(), _cuda_optimizers(cfg.optimizer), shim, torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # host random draws (module dropout) the same every time
        with shim.building():
            models = build_fake_models(mc, load_dtype(cfg.mixed_precision), cfg.pretrained_model_name_or_path)
        with tracker:
            tracker.label = "setup"
            tracker.adopt(_tensors(models.unet, models.vae, *models.text_encoders))  # all loaded to the GPU
            loaded = tracker.serials_of(_tensors(models.unet, models.vae, *models.text_encoders))
            run = EstimateRun(cfg, tracker, total_steps)
            with shim.building():
                run.setup(models, bucket)
            setup_peak = tracker.peak
            weights = tracker.serials_of(_tensors(models.unet, models.vae, *models.text_encoders))
            weights.update(tracker.serials_of(_tensors(run.network)))
            setup_split = tracker.split({**loaded, **weights}, {}, {})  # (fp8_base replaces the loaded ones)
            tracker.reset_peak()
            measure = _one_step(run, tracker, weights)
    measure.setup_peak, measure.setup_split = setup_peak, setup_split
    measure.notes = notes
    return measure


def _one_step(run: EstimateRun, tracker: MemoryTracker, weights: dict[int, int]) -> StepMeasure:
    """Forward, backward, optimizer step; the peak of a later step from this first one."""
    cfg = run.cfg
    batch = run.fake_batch()
    ops_before, written_before = tracker.ops, tracker.allocated_total
    with _step_flops() as counter:
        tracker.label = "forward"
        loss = run.step_loss(batch, None)
        tracker.label = "backward"
        run.acc.backward(loss / cfg.gradient_accumulation_steps)
    flops = counter.get_total_flops()
    grads = tracker.serials_of(p.grad for p in run.params if p.grad is not None)
    fb_peak, fb_split, fb_phase = tracker.peak, tracker.split(weights, grads, {}), tracker.peak_label
    tracker.reset_peak()
    tracker.label = "optimizer"
    grad_bytes = sum(grads.values())
    run.optimizer_step()
    ops, written = tracker.ops - ops_before, tracker.allocated_total - written_before
    state_tensors = [
        t
        for s in run.optimizer.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    ]
    state = tracker.serials_of(state_tensors)
    state_bytes = sum(state.values())
    # A later step runs its forward and backward with the optimizer state alive (and, with
    # gradient accumulation, every gradient alive from the start).
    held_grads = grad_bytes if cfg.gradient_accumulation_steps > 1 else fb_split.gradients
    later = fb_peak + state_bytes + (held_grads - fb_split.gradients)
    if later >= tracker.peak:
        split = replace(fb_split, gradients=held_grads, optimizer_state=state_bytes)
        peak, phase = later, fb_phase
    else:
        split, peak, phase = tracker.split(weights, grads, state), tracker.peak, "optimizer"
    return StepMeasure(
        setup_peak=0,
        setup_split=None,
        step_peak=peak,
        split=split,
        peak_phase=phase,
        flops=int(flops),
        ops=ops,
        bytes_written=written,
        trainable_params=sum(p.numel() for p in run.params),
        latent_bytes=run.latent_bytes,
        text_bytes=run.text_bytes,
        notes=[],
    )


@contextlib.contextmanager
def _quiet():
    """The libraries' warnings belong to a real run (its log shows them), not to an estimate."""
    import warnings

    from diffusers.utils import logging as diffusers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        diffusers_logging.set_verbosity(level)


class _WholeStep:
    """FlopCounterMode's module tracker, reduced to "the whole step": the real one hooks every
    module's inputs and outputs with backward hooks that form reference cycles, which keep
    activations alive until Python's garbage collector runs (memory a real run frees at once)."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _step_flops() -> FlopCounterMode:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _WholeStep()
    return counter


def replace_for_estimate(cfg: Any) -> Any:
    """The config as the estimate runs it: no LoRA weights file read (same shapes), xformers
    as SDPA (both tile attention; xformers need not be installed here)."""
    changes: dict[str, Any] = {}
    if cfg.network_weights and not cfg.dim_from_weights:
        changes["network_weights"] = ""
    if cfg.xformers == "xformers":
        changes["xformers"] = "sdpa"
    return cfg.model_copy(update=changes) if changes else cfg
