"""`python -m trainer --config PRESET.json [--dry-run] [--json] [--events jsonl] [--resume STATE_DIR]`

Trains headless from a preset (ours or a Kohya GUI file). Works the same under
`accelerate launch`; with num_processes > 1 in the preset it starts accelerate itself.
Exit codes: 0 done or stopped (Ctrl-C / SIGTERM once: the LoRA and,
with save_state, the training state are saved), 2 config or dataset problem, 1 training
failure, 130 aborted by a second Ctrl-C.

With --dry-run, `--estimate`, `--vram GIB` or `--gpu NAME` add the GPU memory and time
estimate (trainer.estimate; "estimate" in the JSON): peak memory, whether it fits, the
smallest change that fits, seconds per step.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from trainer.config import ConfigError
from trainer.presets import load_preset


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="preset JSON (ours or a Kohya GUI config)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; load no model")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as one JSON object")
    p.add_argument("--events", choices=["jsonl"], help="write every event as a JSON line on stdout")
    p.add_argument(
        "--estimate", action="store_true", help="with --dry-run: also estimate GPU memory and time (seconds)"
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


def _launch(args: argparse.Namespace, cfg) -> int:
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
    while True:  # Ctrl-C reaches the processes too (same process group): they stop and save
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        cfg, warnings = load_preset(args.config)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.resume is not None:
        cfg.resume = args.resume
    if cfg.num_processes > 1 and not args.dry_run:
        from trainer.launch import under_launcher

        if not under_launcher():
            return _launch(args, cfg)
    if args.dry_run:
        from trainer.data.folders import DatasetError
        from trainer.plan.training_plan import build_plan

        try:
            plan = build_plan(cfg)
        except DatasetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        plan.warnings[:0] = warnings
        report, text = plan.to_json(), plan.to_text()
        if args.estimate or args.vram or args.gpu:  # torch on shape-only tensors: seconds, cached
            from trainer.estimate import dry_run_section

            try:
                report["estimate"], estimate_text = dry_run_section(cfg, plan, args.vram, args.gpu)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            text += "\n\n" + estimate_text
        print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else text)
        return 0

    from trainer.cli_progress import ConsoleReporter, JsonLinesReporter
    from trainer.events import Event
    from trainer.run.train import train_with_events

    reporter = JsonLinesReporter() if args.events == "jsonl" else ConsoleReporter()
    for w in warnings:
        reporter(Event("warning", {"message": w}))
    stop = threading.Event()

    def on_signal(signum, frame):  # first Ctrl-C / SIGTERM: stop after this step and save
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping after the current step (Ctrl-C again to abort without saving)...", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        code = train_with_events(cfg, reporter, stop)
    except KeyboardInterrupt:  # the second Ctrl-C: out now, files saved before stay complete
        print("\nAborted without saving; files saved before are complete.", file=sys.stderr)
        code = 130
    reporter.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
