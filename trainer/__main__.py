"""`python -m trainer --config PRESET.json [--dry-run] [--json] [--events jsonl] [--resume STATE_DIR]`

Also `python -m trainer queue ...` (a queue of runs and sweeps, trainer.queue.cli) and
`python -m trainer grid ...` (a comparison grid of LoRA files, trainer.sampling.grid_cli).

Trains headless from a preset (ours or a Kohya GUI file). Works the same under
`accelerate launch`; with num_processes > 1 in the preset it starts accelerate itself.
Exit codes: 0 done or stopped (Ctrl-C / SIGTERM / SIGHUP once: the LoRA and, with
save_state, the training state are saved), 2 config or dataset problem, 1 training
failure, 130 aborted by a second Ctrl-C.

--dry-run makes every check a run makes before it loads a model (trainer.run.checks: the
settings, the dataset, the paths and the machine, the model file, the optimizer's
arguments, the state to resume from) and prints the plan, or exits 2 listing the problems
in the words the run would use. Settings that do not validate are listed together with
the problems of the rest. Tokens a message quotes show as ***.

The dry run also estimates the run's peak GPU memory and time (trainer.estimate;
"estimate" in the JSON): whether it fits `--vram GIB` (default: the GPU present, if any),
the smallest change that fits, seconds per step on `--gpu NAME`. `--no-estimate` skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import threading

from trainer.config import ConfigError, TrainingConfig
from trainer.presets import load_preset


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="preset JSON (ours or a Kohya GUI config)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; load no model")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as one JSON object")
    p.add_argument("--events", choices=["jsonl"], help="write every event as a JSON line on stdout")
    p.add_argument(
        "--no-estimate", action="store_true", help="with --dry-run: skip the GPU memory and time estimate"
    )
    p.add_argument("--vram", type=float, metavar="GIB", help="with --dry-run: the GPU's memory; does it fit?")
    p.add_argument("--gpu", metavar="NAME", help="with --dry-run: the GPU for the time estimate, e.g. 4090")
    p.add_argument(
        "--resume",
        metavar="STATE_DIR",
        default=None,
        help="continue from a <name>-state folder (overrides the preset's 'resume')",
    )
    return p.parse_args(argv)


def _launch(args: argparse.Namespace, cfg: TrainingConfig) -> int:
    """num_processes > 1 outside a launcher: run this same command under accelerate launch."""
    import subprocess

    from trainer.launch import accelerate_command

    cmd = accelerate_command(args.config, cfg, sys.executable, events=args.events == "jsonl")
    if args.resume is not None:
        cmd += ["--resume", args.resume]
    print(f"Starting {cfg.num_processes} processes with accelerate launch", file=sys.stderr)
    try:
        proc = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"error: could not start accelerate ({exc})", file=sys.stderr)
        return 1
    # Ctrl-C reaches the processes too (same process group); SIGTERM / SIGHUP sent to this
    # process alone (a service manager, a closed terminal) are passed on: they stop and save.
    import signal

    def forward(signum: int, frame: object) -> None:
        proc.send_signal(signum)

    names = ("SIGTERM", "SIGHUP")
    before = {s: signal.signal(s, forward) for n in names if (s := getattr(signal, n, None)) is not None}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def leave_terminal(fds: list[int]) -> None:
    """After SIGHUP the terminal is gone and writing to it fails (EIO), which would end the
    run before it saves: what would go to it goes to /dev/null instead (pipes and files
    keep their output)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(null, fd)
    finally:
        os.close(null)


def _refused(args: argparse.Namespace, exc: ConfigError) -> int:
    """Settings that do not validate: every problem at once, those of the dataset, the
    paths and the machine too (checked on the settings that did validate); exit 2."""
    if exc.config is None:  # nothing usable was read
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2
    from trainer.run.checks import check_before_loading

    cfg = exc.config
    if args.resume is not None:
        cfg.resume = args.resume
    checked = check_before_loading(cfg, config_problems=exc.problems)
    print(f"error: {args.config}: {checked.message()}", file=sys.stderr)
    return 2


def _dry_run(args: argparse.Namespace, cfg: TrainingConfig, warnings: list[str]) -> int:
    """The plan, after the same checks as a run (no model loaded); exit 2 with their problems."""
    from trainer.config.secrets import redact_data, redact_text, secret_values
    from trainer.run.checks import check_before_loading

    checked = check_before_loading(cfg)
    elsewhere = []  # planning for another GPU: what only this machine lacks is a note
    if args.gpu or args.vram:
        elsewhere = [p for p in checked.problems if p.needs_gpu]
        checked.problems = [p for p in checked.problems if not p.needs_gpu]
    if checked.problems:
        print(f"error: {checked.message()}", file=sys.stderr)
        return 2
    plan = checked.plan
    plan.warnings[:0] = warnings
    plan.warnings += checked.warnings
    plan.warnings += [f"not on this machine (planned for another GPU): {p}" for p in elsewhere]
    report, text = plan.to_json(), plan.to_text()
    if not args.no_estimate:  # the run's step on shape-only tensors: seconds, then cached
        from trainer.estimate import dry_run_section

        try:
            report["estimate"], estimate_text = dry_run_section(cfg, plan, args.vram, args.gpu)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        text += "\n\n" + estimate_text
    secrets = secret_values(cfg)  # a token a message quotes shows as ***
    if args.json:
        print(json.dumps(redact_data(report, secrets), indent=2, ensure_ascii=False))
    else:
        print(redact_text(text, secrets))
    return 0


def _subcommand(argv: list[str]) -> int | None:
    """`python -m trainer queue ...` (trainer.queue.cli) and `... grid ...`
    (trainer.sampling.grid_cli); None for the training command."""
    if argv and argv[0] == "queue":
        from trainer.queue.cli import main as queue_main

        return queue_main(argv[1:])
    if argv and argv[0] == "grid":
        from trainer.sampling.grid_cli import main as grid_main

        return grid_main(argv[1:])
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (code := _subcommand(argv)) is not None:
        return code
    args = _args(argv)
    try:
        cfg, warnings = load_preset(args.config)
    except ConfigError as exc:
        return _refused(args, exc)
    if args.resume is not None:
        cfg.resume = args.resume
    if not args.dry_run:  # torch is not loaded yet: how idle threads wait, from the preset
        from trainer.run.cpu_threads import apply_cpu_thread_defaults

        apply_cpu_thread_defaults(threads=cfg.num_cpu_threads_per_process, processes=cfg.num_processes)
    if cfg.num_processes > 1 and not args.dry_run:
        from trainer.launch import under_launcher

        if not under_launcher():
            return _launch(args, cfg)
    if args.dry_run:
        return _dry_run(args, cfg, warnings)

    from trainer.cli_progress import ConsoleReporter, JsonLinesReporter
    from trainer.config.secrets import redact_text, secret_values
    from trainer.estimate import gpu_fit_warning
    from trainer.events import Event
    from trainer.run.train import train_with_events

    terminal = [fd for fd in (1, 2) if os.isatty(fd)]
    lost = functools.partial(leave_terminal, terminal)  # writes to a closed terminal fail (EIO)
    reporter = JsonLinesReporter() if args.events == "jsonl" else ConsoleReporter(lost_terminal=lost)
    for w in warnings:  # notes about the preset; a token one quotes shows as ***
        reporter(Event("warning", {"message": redact_text(w, secret_values(cfg))}))
    stop = threading.Event()

    def on_signal(signum, frame):  # first Ctrl-C / SIGTERM / SIGHUP: stop after this step and save
        if signum == getattr(signal, "SIGHUP", None):
            leave_terminal(terminal)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        # a raw write: the handler may run inside the main thread's own write to stderr (the
        # progress bar), where print() would re-enter stderr's buffer and fail
        with contextlib.suppress(OSError):
            os.write(2, b"\nStopping after the current step (Ctrl-C again to abort without saving)...\n")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        # SIGHUP (the terminal closed) too, unless it is ignored (started under nohup)
        if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            signal.signal(signal.SIGHUP, on_signal)
    try:
        code = train_with_events(cfg, reporter, stop, fit_check=gpu_fit_warning)
    except KeyboardInterrupt:  # the second Ctrl-C: out now, files saved before stay complete
        print("\nAborted without saving; files saved before are complete.", file=sys.stderr)
        code = 130
    reporter.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
