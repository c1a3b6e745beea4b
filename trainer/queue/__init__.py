"""Overnight experiments: a queue of runs on disk, run one after another, and sweeps.

`store` (the queue file, written atomically under a lock), `add` (a preset and every
variant of its sweep, checked first), `runner` (the runs in this process, resumed after
a crash), `cli` (`python -m trainer queue ...`). Sweeps themselves are values of the
config (trainer.config.sweep). Imports trainer.config, trainer.files, trainer.events,
trainer.presets, and to run and check: trainer.run, trainer.estimate, trainer.cli_progress.
"""

from trainer.queue.store import DEFAULT_QUEUE_FILE, Entry, Queue, QueueError, change_queue, read_queue

__all__ = ["DEFAULT_QUEUE_FILE", "Entry", "Queue", "QueueError", "change_queue", "read_queue"]
