"""What stops a run, explained: a non-finite loss, memory running out, a save that fails.

A run started before bed must end with a message that says what happened and what to
change, never with a traceback (that goes to the log file). `LossGuard` watches the
loss of every step without making the GPU wait, and is checked before every save so a
diverged LoRA is never written over a good one. `explain_failure` turns an exception
that ended a run into (message, hint) for the error event.
"""

from __future__ import annotations

import errno
import types

import torch

from trainer.config import TrainingConfig
from trainer.config.checks_training import fp8_base_works_with
from trainer.config.rules.optimizer_args import BITSANDBYTES
from trainer.config.secrets import redact_text, secret_values
from trainer.files import describe_os_error
from trainer.network.lora_file import SaveError

# The Run methods a failure can happen in, and what the user would call that phase.
_PHASES = {
    "_load_models": "while loading the models",
    "_make_network": "while adding the LoRA to the models",
    "_cache_latents": "while caching the latents",
    "_cache_text": "while caching the text-encoder outputs",
    "_make_optimizer": "while setting up the optimizer",
    "_loop": "during a training step",
    "step_loss": "during a training step",
    "optimizer_step": "during a training step",
}


class TrainingError(RuntimeError):
    """A failure during training with a message for a person (NaN loss, ...)."""


class LossGuard:
    """Stops training at the first NaN or inf loss, naming the step.

    On a CPU each loss is checked at once. On a GPU reading a value would make every step
    wait for the GPU, so the first bad step and its loss are kept in device tensors and
    read by `check()`, which the run calls when it reports progress and before every save.
    `sync_each_step` forces one way or the other (None: at once on a CPU only). With
    several processes (`world` > 1) every process learns of a bad loss on any of them in
    the same step and stops there, so none is left waiting for the others.
    """

    def __init__(self, cfg: TrainingConfig, sync_each_step: bool | None = None, world: int = 1) -> None:
        self.cfg = cfg
        self.sync_each_step = sync_each_step if world == 1 else True
        self.world = world
        self._first_bad: torch.Tensor | None = None  # step of the first non-finite loss, or -1
        self._bad_value: torch.Tensor | None = None

    def observe(self, loss: torch.Tensor, step: int, stop: bool = False) -> bool:
        """Note the loss of `step` (counted from 1); raises TrainingError on a CPU.

        `stop`: this process was asked to stop (Stop, Ctrl-C, SIGTERM). Returns whether to
        stop after this step: `stop` itself with one process; with several, whether any of
        them was asked, so that all stop at the same step (the same exchange as the loss)."""
        loss = loss.detach().float()
        if self.world > 1:  # a bad loss or a stop anywhere: every process, at this step
            flags = torch.stack(
                [(~torch.isfinite(loss)).any().float(), torch.tensor(float(stop), device=loss.device)]
            )
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            bad, any_stop = flags.tolist()  # one read for both
            stop = bool(any_stop)
            if bad and torch.isfinite(loss).all():
                raise TrainingError(self._message(float("nan"), step) + " (on another process)")
        if self.sync_each_step or (self.sync_each_step is None and loss.device.type == "cpu"):
            if not torch.isfinite(loss).all():
                raise TrainingError(self._message(float(loss.reshape(-1)[0]), step))
            return stop
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._bad_value = torch.zeros((), dtype=torch.float32, device=loss.device)
        new = ~torch.isfinite(loss).all() & (self._first_bad < 0)
        self._first_bad = torch.where(new, step, self._first_bad)
        self._bad_value = torch.where(new, loss.reshape(-1)[0], self._bad_value)
        return stop

    def check(self) -> None:
        """Raise TrainingError if any loss so far was NaN or inf (waits for the GPU)."""
        if self._first_bad is None:
            return
        step = int(self._first_bad)
        if step >= 0:
            raise TrainingError(self._message(float(self._bad_value), step))

    def _message(self, value: float, step: int) -> str:
        cfg = self.cfg
        causes = [
            (
                f"a learning rate too high (learning_rate {cfg.learning_rate:g}, unet_lr "
                f"{cfg.unet_lr:g}, text_encoder_lr {cfg.text_encoder_lr:g}: try 1e-4 or lower)"
            )
        ]
        if cfg.mixed_precision == "fp16":
            causes.append(
                "fp16 overflowing"
                + (
                    " (SDXL in fp16 is the classic case: use bf16)"
                    if cfg.sdxl
                    else "; use bf16 where the GPU has it"
                )
            )
        if cfg.full_fp16 or cfg.full_bf16:
            causes.append("full_fp16 / full_bf16 (turn it off)")
        causes.append("a network_alpha far above network_dim")
        return (
            f"The loss became {value} at step {step}, so training stopped there. Nothing "
            "from that step on was saved; the files saved before it are complete and "
            "unchanged. Usual causes: " + "; ".join(causes) + "."
        )


class DataGuard:
    """Stops a run that cannot read most of its data, rather than "training" on nothing.

    An image that cannot be read (deleted, unplugged disk) is left out of its batch with a
    warning; a batch left with no image trains nothing and takes no step. Once more than
    half of an epoch's images x repeats (of this process) could not be read, the run stops
    with exit 1, naming some of them: the rest of the epoch could not make up for it, and an
    epoch where no batch could be read is always more than half."""

    def __init__(self, dataset, loader) -> None:
        self.dataset, self.loader = dataset, loader
        self.total = self.lost = 0
        self.examples: list[str] = []

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.total, self.lost, self.examples = epoch, 0, 0, []

    def observe(self, k: int, batch: dict | None) -> None:
        """Count what batch `k` of the epoch asked for and did not get; raise TrainingError
        when more than half of the epoch is lost."""
        self.total = self.total or self.loader.entries_dealt()
        got = set(batch["indices"]) if batch is not None else set()
        missing = [i for i in self.loader.requested(k) if i not in got]
        if not missing:
            return
        self.lost += len(missing)
        for i in missing:
            path = str(self.dataset.entries[i].item.path)
            if len(self.examples) < 3 and path not in self.examples:
                self.examples.append(path)
        if 2 * self.lost > self.total:
            raise TrainingError(
                f"Most of the training images could not be read in epoch {self.epoch}: "
                f"{self.lost} of its {self.total} images x repeats so far (e.g. {', '.join(self.examples)}), "
                "so training stopped there; nothing was trained on the missing ones. Check that the "
                "image folder is still there (an unplugged disk, a network folder gone) and start "
                "again; the files saved before are complete."
            )


def _phase(exc: BaseException) -> str:
    """The phase of the run where `exc` was raised, from the deepest Run method in its traceback."""
    phase = ""
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in _PHASES:
            phase = _PHASES[name]
        elif name.startswith(("_sample", "sample_image")):
            phase = "while making sample images"
        tb = tb.tb_next
    return phase or "during training"


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or CPU allocator) out-of-memory error, whatever wraps it."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _fp8_base_would_help(cfg: TrainingConfig, on_gpu: bool) -> bool:
    """fp8_base is a way out only where it can run: a CUDA GPU, mixed precision, and a LoRA
    type that trains on fp8 weights (not the LyCORIS types without a bypass mode), and not
    compiled on a GPU whose kernels have no fp8 (trainer.run.preflight_options)."""
    from trainer.run.preflight_options import fp8_compile_blocked

    return (
        not cfg.fp8_base
        and on_gpu
        and torch.cuda.is_available()
        and cfg.mixed_precision in ("fp16", "bf16")
        and fp8_base_works_with(cfg.LoRA_type)
        and hasattr(torch, "float8_e4m3fn")
        and fp8_compile_blocked(cfg) is None
    )


def out_of_memory_message(cfg: TrainingConfig, exc: BaseException) -> tuple[str, str]:
    """(message naming the settings that used the memory, hint listing the ways out)."""
    on_gpu = isinstance(exc, torch.cuda.OutOfMemoryError) or "cuda" in str(exc).lower()
    where = "The GPU" if on_gpu else "The computer"
    te_trained = not cfg.network_train_unet_only
    used = [
        f"train_batch_size {cfg.train_batch_size}",
        f"max_resolution {cfg.max_resolution}",
        f"gradient_checkpointing {'on' if cfg.gradient_checkpointing else 'off'}",
        f"cache_latents {'on' if cfg.cache_latents else 'off'}",
        "the text encoder trained too" if te_trained else "U-Net only",
        f"optimizer {cfg.optimizer}",
        f"mixed_precision {cfg.mixed_precision}",
    ]
    message = (
        f"{where} ran out of memory {_phase(exc)}, with "
        + ", ".join(used)
        + ". Training stopped; the files saved before are complete."
    )
    ways = []
    if _phase(exc) == _PHASES["_cache_latents"] and cfg.vae_batch_size > 1:
        ways.append(f"lower vae_batch_size (now {cfg.vae_batch_size}; 0 encodes one image at a time)")
    if cfg.train_batch_size > 1:
        ways.append(
            f"lower train_batch_size (now {cfg.train_batch_size}) and raise "
            "gradient_accumulation_steps to keep the same effective batch"
        )
    if not cfg.gradient_checkpointing:
        ways.append("turn on gradient_checkpointing (much less memory, about 25% slower)")
    if _fp8_base_would_help(cfg, on_gpu):
        ways.append("turn on fp8_base (the frozen U-Net stored in fp8: about half its memory)")
    ways.append(f"lower max_resolution (now {cfg.max_resolution}; 512,512 for SD1.5, 768-1024 for SDXL)")
    if not cfg.cache_latents:
        ways.append("turn on cache_latents (the VAE then leaves the GPU during training)")
    if te_trained:
        ways.append(
            "train the U-Net only (network_train_unet_only) so the text-encoder "
            "outputs are cached and the text encoder leaves the GPU"
        )
    if cfg.optimizer not in BITSANDBYTES:
        ways.append(f"choose an 8-bit optimizer such as AdamW8bit (now {cfg.optimizer})")
    if cfg.mixed_precision == "no" and on_gpu:
        ways.append("choose mixed_precision bf16 (or fp16 on older GPUs)")
    return message, "Ways out, most effective first:\n" + "\n".join(f"- {w}" for w in ways)


def redact(text: str, cfg: TrainingConfig) -> str:
    """`text` with every secret (tokens, API keys) replaced by ***: the values of the secret
    settings, values given under a secret name, token-shaped words (trainer.config.secrets)."""
    return redact_text(text, secret_values(cfg))


def _save_hint(cfg: TrainingConfig, exc: BaseException) -> str:
    """What to do after a failed save: advice for the cause the OS gave (disk full, name too
    long, a folder that cannot be written), then how to continue."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    code = cause.errno if isinstance(cause, OSError) else None
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "Free some disk space, or choose an output folder on a disk with room"
    elif code == errno.ENAMETOOLONG:
        what = (
            f"Choose a shorter output_name (now {len(cfg.output_name.encode())} bytes) or an output "
            "folder with a shorter path"
        )
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "Choose an output folder you can write to (this one is read-only or not yours to write)"
    elif isinstance(cause, OSError):
        what = f"Fix what stopped the write ({describe_os_error(cause)})"
    else:
        what = "Fix what the message names"
    resume = (
        " with Resume set to the newest -state folder"
        if cfg.save_state or cfg.save_state_on_train_end
        else ""
    )
    return f"{what}, then start again{resume}."


def explain_failure(cfg: TrainingConfig, exc: BaseException) -> tuple[str, str]:
    """(message, hint) for an exception that ended a run; never a traceback."""
    if is_out_of_memory(exc):
        message, hint = out_of_memory_message(cfg, exc)
    elif isinstance(exc, SaveError):
        message = (
            f"Saving failed, so training stopped: {exc}. Files saved earlier are complete and unchanged."
        )
        hint = _save_hint(cfg, exc)
    else:
        message = f"Training failed: {type(exc).__name__}: {exc}"
        hint = "The full traceback is in the log file."
    return redact(message, cfg), redact(hint, cfg)
