"""Hugging Face ids: the files a diffusers pipeline needs, the cache, and the download.

A model id ("stabilityai/stable-diffusion-xl-base-1.0") is downloaded into the Hugging
Face cache (HF_HUB_CACHE / HF_HOME), where `detect_model` and the loader find it later by
the same id. Only what training loads is fetched: model_index.json, the U-Net, VAE and
text encoder(s) (config + full-precision weights, safetensors before .bin), tokenizer(s)
and scheduler; never the root single-file checkpoints, safety checker, ONNX or Flax files,
which are often several times larger. An interrupted download resumes: finished files are
not fetched again, and a dropped connection continues from its last byte (HTTP Range).

Imports huggingface_hub on use (no torch) and trainer.config; nothing else of trainer.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from trainer.config.secrets import redact_text

# "owner/name" as the Hugging Face Hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Sub-folders whose weights training loads, and the folders it reads whole.
WEIGHT_FOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2")
WHOLE_FOLDERS = ("tokenizer", "tokenizer_2", "scheduler")
_STEMS = r"(diffusion_pytorch_model|model|pytorch_model)"
_SHARD = r"(-\d+-of-\d+)?"
_SAFETENSORS = re.compile(rf"^{_STEMS}({_SHARD}\.safetensors|\.safetensors\.index\.json)$")
_BIN = re.compile(rf"^{_STEMS}({_SHARD}\.bin|\.bin\.index\.json)$")
_VARIANT = re.compile(rf"^{_STEMS}\.[A-Za-z0-9_]+{_SHARD}\.(safetensors|bin)$")


class DownloadError(Exception):
    """A model that cannot be downloaded; the message is for the user (never holds a token)."""


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes on disk of the files being fetched, out of their total."""

    done: int
    total: int
    files_done: int
    files_total: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def cache_folder_name(repo_id: str) -> str:
    """The cache's folder of a model id: models--owner--name."""
    return "models--" + repo_id.replace("/", "--")


def cached_folder(repo_id: str, cache_dir: str | Path | None = None) -> Path | None:
    """The cached snapshot of `repo_id` that holds its model_index.json, or None.

    A snapshot fetched by `download_pipeline` holds only the files training needs, so the
    cache is asked for model_index.json, not for a complete copy of the repository."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "model_index.json", cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - a malformed id or cache: not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def missing_weights(folder: Path) -> list[str]:
    """The components of a cached snapshot whose config arrived but whose weights did not
    (an interrupted download); empty when every component present has its weights."""
    missing = []
    for component in WEIGHT_FOLDERS:
        sub = folder / component
        if (sub / "config.json").is_file():
            names = [p.name for p in sub.iterdir()]
            if not any((_SAFETENSORS.match(n) or _BIN.match(n)) and "index" not in n for n in names):
                missing.append(component)
    return missing


def _weights(names: set[str], folder: str) -> list[str]:
    """The full-precision weight files of one component folder (names without the folder)."""
    for pattern in (_SAFETENSORS, _BIN):
        chosen = sorted(n for n in names if pattern.match(n))
        if any(not n.endswith(".index.json") for n in chosen):
            return chosen
    variants = sorted(n for n in names if _VARIANT.match(n))
    if variants:
        raise DownloadError(
            f"its {folder} has only {variants[0].split('.')[-2]} variant weights ({variants[0]}), "
            "which this trainer does not load; use the model's single .safetensors file instead"
        )
    raise DownloadError(f"its {folder} folder holds no weights (.safetensors or .bin)")


def pipeline_files(files: Mapping[str, int]) -> dict[str, int]:
    """{path: size} of the files training loads, out of a repository's {path: size}.

    Raises DownloadError when the repository is not a diffusers model (no model_index.json)
    or a component has no weights this trainer loads."""
    if "model_index.json" not in files:
        raise DownloadError(
            "it is not a diffusers model (no model_index.json); give the path of a downloaded "
            ".safetensors file instead"
        )
    chosen = {"model_index.json": files["model_index.json"]}
    by_folder: dict[str, set[str]] = {}
    for path in files:
        folder, sep, name = path.partition("/")
        if sep and "/" not in name:
            by_folder.setdefault(folder, set()).add(name)
    for folder in WHOLE_FOLDERS:
        for name in by_folder.get(folder, ()):
            chosen[f"{folder}/{name}"] = files[f"{folder}/{name}"]
    for folder in WEIGHT_FOLDERS:
        names = by_folder.get(folder)
        if not names:
            continue
        for name in ["config.json", *_weights(names, folder)]:
            if name in names:
                chosen[f"{folder}/{name}"] = files[f"{folder}/{name}"]
    for needed in ("unet", "vae", "text_encoder"):
        if f"{needed}/config.json" not in chosen:
            raise DownloadError(
                f"it has no {needed} folder; training needs a complete Stable Diffusion model"
            )
    return chosen


def _progress(storage: Path, commit: str, files: Mapping[str, int]) -> DownloadProgress:
    """What is on disk now: finished files of the snapshot plus the partial blobs."""
    snapshot = storage / "snapshots" / commit
    finished = [p for p in files if (snapshot / p).is_file()]
    partial = 0
    blobs = storage / "blobs"
    if blobs.is_dir():
        for blob in blobs.glob("*.incomplete"):
            try:
                partial += blob.stat().st_size
            except OSError:  # renamed into place while we looked
                pass
    total = sum(files.values())
    done = min(total, sum(files[p] for p in finished) + partial)
    return DownloadProgress(done, total, len(finished), len(files))


def _message(repo_id: str, exc: Exception, endpoint: str) -> str:
    """A download failure in words, naming the way out."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, GatedRepoError):
        return (
            f"{repo_id} is gated: accept its licence on its Hugging Face page, then give your token "
            "(HF_TOKEN, or the Hugging Face token field under Advanced)"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"{repo_id} is neither a local folder/file nor a model on Hugging Face (or it is private: "
            "give your token in HF_TOKEN or the Hugging Face token field)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"{repo_id} has no such revision"
    if isinstance(exc, DownloadError):
        return f"{repo_id} cannot be used: {exc}"
    if isinstance(exc, OSError) and getattr(exc, "errno", None) is not None:
        return f"downloading {repo_id} failed writing to the disk ({exc}); is it full?"
    return (
        f"downloading {repo_id} from {endpoint} failed ({type(exc).__name__}: {exc}). Is this "
        "machine online? Press Start again to resume"
    )


def download_pipeline(
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    poll_s: float = 0.5,
) -> Path:
    """Download what training needs of `repo_id` into the cache; returns the snapshot folder.

    `token` (else HF_TOKEN) is sent to the Hub only; it is never written or shown.
    `on_progress` is called every `poll_s` seconds and once at the end. Raises
    DownloadError with a message for the user."""
    from huggingface_hub import HfApi, constants, snapshot_download

    endpoint = endpoint or constants.ENDPOINT
    cache = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    try:
        if not HUB_ID.match(repo_id):
            raise DownloadError("it is not a Hugging Face id (owner/name)")
        api = HfApi(endpoint=endpoint, token=token or None)
        commit = api.model_info(repo_id, revision=revision).sha or ""
        listing = {
            f.path: int(f.size)
            for f in api.list_repo_tree(repo_id, recursive=True, revision=commit or revision)
            if getattr(f, "size", None) is not None
        }
        files = pipeline_files(listing)
        storage = cache / cache_folder_name(repo_id)
        stop = threading.Event()

        def report() -> None:
            if on_progress is not None:
                on_progress(_progress(storage, commit, files))

        def watch() -> None:
            while not stop.wait(poll_s):
                report()

        watcher = threading.Thread(target=watch, daemon=True, name="hub-download-progress")
        watcher.start()
        try:
            folder = snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache,
                endpoint=endpoint,
                token=token or None,
                allow_patterns=sorted(files),
            )
        finally:
            stop.set()
            watcher.join()
        report()
        return Path(folder)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message for the user
        raise DownloadError(redact_text(_message(repo_id, exc, endpoint), [token or ""])) from None
