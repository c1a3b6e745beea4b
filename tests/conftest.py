"""Fixtures shared by all tests: tiny models, the demo dataset, markers.

Plain helpers (functions, classes, constants) are in tests/helpers.py.

- `tiny_model(arch="sd15") -> Path`: a tiny random-weight diffusers model of arch
  "sd15", "sd2v" or "sdxl", built once per session (seed 0).
- `tiny_model_dir`: the sd15 one.
- `models`: the tiny sd15 model loaded in fp32, once per test module (tests may change it).
- `tiny_single_file(arch="sd15") -> Path`: the same weights as one fp16 .safetensors in
  the original (LDM / SGM) layout, as downloaded from CivitAI.
- `demo_dataset`: the demo dataset folder (scripts/make_demo_dataset.py, seed 0).
- `script(name) -> module`: scripts/<name>.py imported by path.
- markers `slow` and `gpu`; gpu tests are skipped where CUDA is not available.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py by path (scripts/ is not a package)."""
    module_name = f"_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def pytest_configure(config: pytest.Config) -> None:
    # Tiny models on 2 shared cores: one thread per process is several times faster than
    # two (OpenMP threads spin while they wait for each other). Subprocesses inherit this.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The estimate's measured steps go to a folder of this test session, not the user's.
    import tempfile

    os.environ.setdefault("LORA_GUI_ESTIMATES", tempfile.mkdtemp(prefix="estimates-"))
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped where none is available")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return  # do not import torch for test runs that need none (GUI tests)
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def script() -> Callable[[str], ModuleType]:
    """Factory: script("make_tiny_model") -> the imported scripts/make_tiny_model.py."""
    return load_script


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: tiny_model("sd15" | "sd2v" | "sdxl") -> path of a diffusers folder."""
    built: dict[str, Path] = {}

    def make(arch: str = "sd15") -> Path:
        if arch not in built:
            from trainer.models.tiny import write_tiny_model

            out = tmp_path_factory.mktemp(f"tiny_{arch}") / "model"
            built[arch] = write_tiny_model(arch, "diffusers", out, seed=0)
        return built[arch]

    return make


@pytest.fixture(scope="session")
def tiny_single_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: tiny_single_file("sd15" | "sd2v" | "sdxl") -> path of a .safetensors checkpoint."""
    built: dict[str, Path] = {}

    def make(arch: str = "sd15") -> Path:
        if arch not in built:
            from trainer.models.tiny import write_tiny_model

            out = tmp_path_factory.mktemp(f"tiny_{arch}_single") / f"tiny-{arch}.safetensors"
            built[arch] = write_tiny_model(arch, "single-file", out, seed=0)
        return built[arch]

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model: Callable[..., Path]) -> Path:
    """The tiny SD1.5 model folder."""
    return tiny_model("sd15")


@pytest.fixture(scope="module")
def models(tiny_model: Callable[..., Path]):
    """The tiny SD1.5 model loaded in fp32; one per test module, as tests apply networks to it."""
    import torch

    from trainer.models import load_models

    return load_models(
        str(tiny_model("sd15")),
        v2=False,
        v_parameterization=False,
        sdxl=False,
        dtype=torch.float32,
        vae_path=None,
    )


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset: 5_demochar and 3_demostyle with 8 images (one without caption)."""
    out = tmp_path_factory.mktemp("demo") / "dataset"
    load_script("make_demo_dataset").write_demo_dataset(out, seed=0)
    return out
