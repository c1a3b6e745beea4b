"""The CLI's views of a run's events: a progress bar for people, JSON lines for programs."""

from __future__ import annotations

import sys

from trainer.events import Event


class JsonLinesReporter:
    """One JSON object per line on stdout (`--events jsonl`), flushed at once."""

    def __call__(self, event: Event) -> None:
        sys.stdout.write(event.to_json() + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class ConsoleReporter:
    """A tqdm progress bar plus readable lines for warnings, saves and errors.

    A terminal that closed (the window shut, an ssh session dropped) makes every write
    fail; the run must still stop and save when its SIGHUP comes, or go on under nohup-like
    conditions, so a failed write sends the terminal's output to /dev/null
    (`lost_terminal`) and the run carries on without the bar."""

    def __init__(self, lost_terminal=None) -> None:
        self.bar = None
        self.lost_terminal = lost_terminal

    def __call__(self, event: Event) -> None:
        try:
            self._show(event)
        except OSError:  # EIO / EPIPE: nobody is reading any more
            if self.lost_terminal is not None:
                self.lost_terminal()
            self.bar = None

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=sys.stderr)

    def _show(self, event: Event) -> None:
        from tqdm import tqdm

        d = event.data
        if event.kind == "plan":
            self._write(
                f"{d['images']} images, {d['steps_per_epoch']} steps per epoch, "
                f"{d['epochs']} epoch(s), {d['total_steps']} steps in all"
            )
            self.bar = tqdm(total=d["total_steps"], unit="step", dynamic_ncols=True)
        elif event.kind == "step" and self.bar is not None:
            self.bar.update(d["step"] - self.bar.n)
            self.bar.set_postfix(
                epoch=f"{d['epoch']}/{d['epochs']}", loss=f"{d['avg_loss']:.4f}", lr=f"{d['lr']:.2e}"
            )
        elif event.kind in ("warning", "log"):
            self._write(("warning: " if event.kind == "warning" else "") + d["message"])
        elif event.kind == "saved":
            self._write(f"saved {d['path']}")
        elif event.kind == "error":
            self._write(
                f"error: {d['message']}"
                + (f"\n{d['hint']}" if d.get("hint") else "")
                + (f"\n(details: {d['log_file']})" if d.get("log_file") else "")
            )
        elif event.kind in ("finished", "stopped"):
            self.close()
            self._write(f"{event.kind}: {d['path']}")

    def close(self) -> None:
        if self.bar is not None:
            bar, self.bar = self.bar, None
            try:
                bar.close()
            except OSError:
                if self.lost_terminal is not None:
                    self.lost_terminal()
