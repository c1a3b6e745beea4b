"""The caches of a run: several processes each encode their share of the latents and all
end up with every latent (two CPU processes, gloo); the caches live in host memory, each
batch is copied to the GPU."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.helpers import make_toy_dataset
from tests.trainer.test_latent_cache import SCALE, dataset_of

WORLD = 2
IMAGES = 5
UNREADABLE = 3


def _stub(vae, ds, rank: int, world: int, to_disk: bool, device="cpu", mask_cache=None):
    """What RunData._cache_latents reads of a Run."""
    return SimpleNamespace(
        cfg=SimpleNamespace(cache_latents_to_disk=to_disk, flip_aug=True, vae_batch_size=1, seed=3),
        models=SimpleNamespace(vae=vae, latent_scale=SCALE),
        dataset=ds,
        mask_cache=mask_cache,
        device=torch.device(device),
        acc=SimpleNamespace(process_index=rank, num_processes=world),
        emit=lambda event: None,
    )


def _counting_vae(model_dir: str, encoded: list[int]):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(os.path.join(model_dir, "vae")).eval()
    original = vae.encode

    def encode(images, *args, **kwargs):
        encoded.append(images.shape[0])
        return original(images, *args, **kwargs)

    vae.encode = encode
    return vae


def _worker(rank: int, init_file: str, model_dir: str, data: str, out_dir: str) -> None:
    from pathlib import Path

    from trainer.run.data import RunData

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        encoded: list[int] = []
        vae = _counting_vae(model_dir, encoded)
        ds = dataset_of(Path(data))
        if rank == 1:  # image 3 (rank 1's share) cannot be read: only rank 1 sees it
            original = ds.load_unique

            def load_unique(index, *args, **kwargs):
                if index == UNREADABLE:
                    ds.failed.add(index)
                    return None
                return original(index, *args, **kwargs)

            ds.load_unique = load_unique
        cache = RunData._cache_latents(_stub(vae, ds, rank, WORLD, to_disk=True))
        result = {"encoded": sum(encoded), "cache": cache, "failed": sorted(ds.failed)}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_each_encode_their_share_and_get_every_latent(tiny_model, tmp_path):
    from trainer.run.data import RunData

    model_dir = tiny_model("sd15")
    data = make_toy_dataset(tmp_path / "data", n=IMAGES)
    encoded: list[int] = []
    vae = _counting_vae(str(model_dir), encoded)
    # one process, no files: the reference (each latent's noise has its own seed)
    reference = RunData._cache_latents(_stub(vae, dataset_of(data), 0, 1, to_disk=False))
    assert sum(encoded) == 2 * IMAGES  # flip_aug: each image and its mirror

    args = (str(tmp_path / "init"), str(model_dir), str(data), str(tmp_path))
    mp.spawn(_worker, args=args, nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    # rank 0 encodes images 0, 2, 4 and rank 1 images 1 and 3 (unreadable), each with its
    # mirror, not all ten
    assert [r["encoded"] for r in results] == [6, 2]
    readable = {k: v for k, v in reference.items() if k[0] != UNREADABLE}
    for result in results:
        cache = result["cache"]
        assert set(cache) == set(readable)  # every rank trains on every image
        assert result["failed"] == [UNREADABLE]  # left out of every rank's batches
        for key, (latent, time_ids) in readable.items():
            assert cache[key][0].device.type == "cpu"
            assert torch.allclose(cache[key][0], latent, atol=1e-5)
            assert torch.equal(cache[key][1], time_ids)
    # each rank wrote the .npz files of its share: all of them are there
    assert len(list((data / "1_toy").glob("*.npz"))) == IMAGES - 1


def test_the_latent_cache_is_kept_in_host_memory(monkeypatch, tmp_path):
    """On a GPU the VAE encodes there, but the cache (which grows with the dataset) is kept
    on the host."""
    import trainer.data.latent_cache as latent_cache
    from trainer.run.data import RunData

    seen = {}

    def fake_build(dataset, encode, **kwargs):
        seen.update(kwargs, encode_device=encode.keywords["device"])
        return {}

    monkeypatch.setattr(latent_cache, "build_latent_cache", fake_build)
    RunData._cache_latents(_stub(torch.nn.Identity(), None, 0, 1, to_disk=False, device="cuda"))
    assert torch.device(seen["device"]).type == "cpu"
    assert seen["encode_device"].type == "cuda"  # the VAE still encodes on the GPU


def test_the_text_cache_is_kept_in_host_memory_and_batches_go_to_the_device(tmp_path):
    from trainer.config import config_from_dict
    from trainer.run.data import RunData

    data = make_toy_dataset(tmp_path / "data", n=2)
    cfg, _ = config_from_dict(
        {"pretrained_model_name_or_path": "unused", "train_data_dir": str(data), "output_dir": str(tmp_path)}
    )

    class Text:
        def encode(self, captions):
            return torch.ones(len(captions), 7, 8), torch.ones(len(captions), 8)

    run = SimpleNamespace(cfg=cfg, dataset=dataset_of(data), text=Text(), device=torch.device("meta"))
    cache = RunData._cache_text(run)
    assert cache and all(h.device.type == "cpu" and p.device.type == "cpu" for h, p in cache.values())
    run.text_cache = cache
    hidden, pooled = RunData._conditioning(run, list(cache)[:1])
    assert hidden.device.type == "meta" and pooled.device.type == "meta"  # the batch: on the device
