"""What to change so that a run fits its GPU: single changes, least disruptive first.

Each candidate is a change of settings that lowers memory, in the order of what it costs
the training: nothing (SDPA attention instead of none, cached latents), time (gradient
checkpointing, 20-30 % slower), the captions' randomness (a text cache needs fixed
captions), a little precision (8-bit optimizer state, fp8 base weights), the text
encoder's training (U-Net only), the batch (batch 1 with gradient accumulation keeping the
effective batch) and last the resolution (three quarters of the largest bucket). Each one
is estimated with the run's own step like the original (so, once cached, instantly);
the first that fits is the recommendation. If no single change fits, they are combined
in the same order until the run fits.

Imports trainer.config and trainer.estimate.fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from trainer.config import ConfigError, check_config, validate_values
from trainer.estimate.fit import FITS_SHARE

EIGHT_BIT = {
    "AdamW": "AdamW8bit",
    "PagedAdamW32bit": "PagedAdamW8bit",
    "Lion": "Lion8bit",
    "SGDNesterov": "SGDNesterov8bit",
}
_FIXED_CAPTIONS = {
    "shuffle_caption": False,
    "caption_dropout_rate": 0.0,
    "caption_dropout_every_n_epochs": 0,
    "caption_tag_dropout_rate": 0.0,
    "enable_wildcard": False,
}


def candidates(cfg: Any, est: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what to tell the user, the settings that change), least disruptive first."""
    if cfg.xformers == "none":
        yield "attention 'sdpa' (fused attention kernels)", {"xformers": "sdpa"}
    if not (cfg.cache_latents or cfg.cache_latents_to_disk or cfg.random_crop or cfg.color_aug):
        yield "cache latents", {"cache_latents": True}
    if not cfg.gradient_checkpointing:
        yield "gradient checkpointing (about 20-30 % slower)", {"gradient_checkpointing": True}
    if cfg.network_train_unet_only and not cfg.cache_text_encoder_outputs:
        fixed = {k: v for k, v in _FIXED_CAPTIONS.items() if getattr(cfg, k) != v}
        label = "cache text-encoder outputs" + (" (captions fixed: no shuffle / dropout)" if fixed else "")
        yield label, {"cache_text_encoder_outputs": True, **fixed}
    eight_bit = EIGHT_BIT.get(cfg.optimizer)
    if eight_bit and est.breakdown_gib["optimizer_state"] * 0.75 >= _gap(est):
        yield f"8-bit optimizer state ({eight_bit})", {"optimizer": eight_bit}
    if cfg.mixed_precision in ("fp16", "bf16") and not cfg.fp8_base:
        yield "fp8 base weights (fp8_base)", {"fp8_base": True}
    if not cfg.network_train_unet_only:
        fixed = {k: v for k, v in _FIXED_CAPTIONS.items() if getattr(cfg, k) != v}
        change = {"network_train_unet_only": True, "cache_text_encoder_outputs": True, **fixed}
        yield "train the U-Net only and cache text-encoder outputs", change
    batch = int(cfg.train_batch_size)
    if batch > 1:
        accumulation = batch * int(cfg.gradient_accumulation_steps)
        label = f"batch size 1 (gradient accumulation {accumulation} keeps the effective batch)"
        yield label, {"train_batch_size": 1, "gradient_accumulation_steps": accumulation}
    w, h = est.bucket
    smaller = (max(256, round(w * 0.75 / 64) * 64), max(256, round(h * 0.75 / 64) * 64))
    if smaller != (w, h):
        yield f"resolution {smaller[0]}x{smaller[1]}", {"max_resolution": f"{smaller[0]},{smaller[1]}"}


def _gap(est: Any) -> float:
    """GiB above what 'fits' allows."""
    return max(0.0, est.peak_vram_gib - est.vram_gib * FITS_SHARE)


def changed_config(cfg: Any, change: dict[str, Any]) -> Any | None:
    """`cfg` with `change`, or None when the change makes the settings invalid."""
    before = {(p.field, p.message) for p in check_config(cfg)[0]}
    try:
        new = validate_values({**cfg.model_dump(), **change})
    except ConfigError:
        return None
    after = {(p.field, p.message) for p in check_config(new)[0]}
    return None if after - before else new


def _plan_for(plan: Any, change: dict[str, Any]) -> Any:
    """The plan as the changed run sees it: a new resolution makes new buckets (from
    max_resolution); the image and step counts stay."""
    if plan is None or "max_resolution" not in change:
        return plan
    return SimpleNamespace(
        images=plan.images, reg_images=plan.reg_images, total_steps=plan.total_steps, buckets=[]
    )


def advise(
    cfg: Any, est: Any, estimate_again: Callable[[Any, Any], Any], *, plan: Any = None
) -> tuple[list[dict[str, Any]], str | None]:
    """(each change tried with its estimate, the recommended one or None).
    `estimate_again(changed_cfg, changed_plan)` estimates a changed run on the same GPU."""

    def tried(label: str, change: dict[str, Any], new: Any) -> dict[str, Any]:
        e = estimate_again(new, _plan_for(plan, change))
        return {
            "change": label,
            "settings": change,
            "peak_vram_gib": e.peak_vram_gib,
            "verdict": e.verdict,
            "fits": e.verdict == "fits",
            "seconds_per_step": e.seconds_per_step,
        }

    results: list[dict[str, Any]] = []
    usable: list[tuple[str, dict[str, Any]]] = []
    for label, change in candidates(cfg, est):
        new = changed_config(cfg, change)
        if new is None:
            continue
        usable.append((label, change))
        results.append(tried(label, change, new))
        if results[-1]["fits"]:
            return results, label
    combined: dict[str, Any] = {}
    labels: list[str] = []
    for label, change in usable:
        combined.update(change)
        labels.append(label)
        new = changed_config(cfg, combined)
        if new is None or len(labels) < 2:
            continue
        results.append(tried(" + ".join(labels), dict(combined), new))
        if results[-1]["fits"]:
            return results, results[-1]["change"]
    return results, None
