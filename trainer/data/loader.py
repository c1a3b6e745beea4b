"""The batches of each epoch for one training process, loaded in the background or not.

Without a latent cache every step decodes, resizes and crops its images; with
`max_data_loader_n_workers` > 0 a torch DataLoader does that in worker processes while
the GPU trains (`persistent_data_loader_workers` keeps them alive between epochs, which
saves their start-up time each epoch). The batches are the same with or without workers:
every random choice of a sample comes from (seed, epoch, entry), never from a worker's
state. With cached latents a batch is only captions and indices, so it is made in the
main process.

Warnings about broken images are raised in the workers but reported by the main process
(the one that can reach the GUI), once per message.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence

from torch.utils.data import DataLoader, Dataset

from trainer.data.dataset import BucketBatcher, EpochBatchSampler, TrainDataset, collate, rank_batches

log = logging.getLogger(__name__)


class _WorkerView(Dataset):
    """The dataset as workers see it: each sample comes back with the warnings it raised."""

    def __init__(self, dataset: TrainDataset):
        self.dataset = copy.copy(dataset)
        self.dataset.on_warning = log.warning  # picklable (workers may be spawned)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[dict | None, list[str]]:
        messages: list[str] = []
        self.dataset.on_warning = messages.append
        try:
            return self.dataset[key], messages
        finally:
            self.dataset.on_warning = log.warning


def _collate_with_warnings(items: Sequence[tuple[dict | None, list[str]]]) -> tuple[dict | None, list[str]]:
    """collate() for the worker view: the batch, and every warning of its samples."""
    return collate([sample for sample, _ in items]), [m for _, ms in items for m in ms]


class BatchLoader:
    """Yields the collated batches of an epoch (None for a batch whose every image failed).

    dataset / batcher: what the trainer built; with_images False means latents are cached.
    workers: max_data_loader_n_workers; persistent: persistent_data_loader_workers.
    rank / world: this process and the number of training processes.
    """

    def __init__(
        self,
        dataset: TrainDataset,
        batcher: BucketBatcher,
        *,
        with_images: bool,
        workers: int = 0,
        persistent: bool = False,
        rank: int = 0,
        world: int = 1,
    ):
        self.dataset, self.batcher, self.with_images = dataset, batcher, with_images
        self.rank, self.world = rank, max(1, world)
        self.sampler = EpochBatchSampler(batcher, rank=rank, world=self.world)
        self.workers = workers if with_images else 0
        self._loader: DataLoader | None = None
        self._reported: set[str] = set()
        self._dealt: list[list[int]] = []
        if self.workers > 0:
            self._loader = DataLoader(
                _WorkerView(dataset),
                batch_sampler=self.sampler,
                collate_fn=_collate_with_warnings,
                num_workers=self.workers,
                persistent_workers=persistent,
            )

    def _current(self) -> list[list[int]]:
        return self._dealt if self._loader is None else self.sampler.dealt

    def requested(self, k: int) -> list[int]:
        """The entries batch `k` of the epoch being loaded asked for (its batch may hold fewer:
        an image that cannot be read is left out)."""
        return self._current()[k]

    def entries_dealt(self) -> int:
        """The entries (images x repeats) this process takes in the epoch being loaded."""
        return sum(len(b) for b in self._current())

    def num_batches(self) -> int:
        """Batches this process takes per epoch (the same every epoch)."""
        return len(self.sampler)

    def batches(self, epoch: int) -> list[list[int]]:
        """The entry indices of each batch this process takes in `epoch`."""
        return rank_batches(self.batcher.epoch_batches(epoch), self.rank, self.world)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[dict | None]:
        """The batches of `epoch` (counted from 1), in order. The first `skip` are None and
        never loaded (a resumed run trained them before its state was saved)."""
        if self._loader is None:
            self._dealt = self.batches(epoch)
            for k, indices in enumerate(self._dealt):
                if k < skip:
                    yield None
                    continue
                yield collate([self.dataset.sample(i, epoch, with_image=self.with_images) for i in indices])
            return
        for _ in range(min(skip, self.num_batches())):
            yield None
        self.sampler.set_epoch(epoch, skip)
        for batch, messages in self._loader:
            for message in messages:
                if message not in self._reported:
                    self._reported.add(message)
                    self.dataset.on_warning(message)
            yield batch
