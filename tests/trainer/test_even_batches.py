"""Several processes step together: each takes the same number of batches every epoch."""

from __future__ import annotations

import pytest

from trainer.data.dataset import EpochBatchSampler, batches_per_process, rank_batches


@pytest.mark.parametrize(("n", "world"), [(1, 2), (3, 2), (4, 2), (5, 3), (7, 4), (2, 3)])
def test_every_process_takes_the_same_number_of_batches(n, world):
    batches = [[i] for i in range(n)]
    shares = [rank_batches(batches, rank, world) for rank in range(world)]
    assert {len(share) for share in shares} == {batches_per_process(n, world)}
    taken = sorted(b[0] for share in shares for b in share)
    assert set(taken) == set(range(n))  # every batch is trained, a few twice
    assert len(taken) - n < world


class _Batcher:
    batch_size = 1

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def epoch_batches(self, epoch):
        return [[i] for i in range(self.n)]


def test_the_sampler_agrees_with_its_length_on_every_rank():
    for rank in range(2):
        sampler = EpochBatchSampler(_Batcher(3), rank=rank, world=2)
        assert len(list(sampler)) == len(sampler) == 2
