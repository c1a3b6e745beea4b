"""Open the LoRA trainer's web page (Kohya GUI style).

    python gui.py                      # http://127.0.0.1:7860, this computer only
    python gui.py --demo               # make the tiny demo model + dataset, load the demo preset
    python gui.py --lang ja --preset presets/sd15_character.json
    python gui.py --host 0.0.0.0 --auth me:secret   # other computers need a password

The page is reachable from this computer only unless --host names another address, and
then only with --auth. No public share link is made unless --share is given (also with
--auth). GRADIO_SHARE / GRADIO_SERVER_NAME in the environment change none of this.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DEMO_PRESET = ROOT / "presets" / "demo.json"
EXIT_USAGE = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gui.py", description="The LoRA trainer's web page.")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--lang", choices=("en", "ja"), default=None, help="page language (default: the browser's language)"
    )
    p.add_argument(
        "--auth",
        default=None,
        metavar="USER:PASS",
        help="require this user name and password (needed for any non-local --host)",
    )
    p.add_argument(
        "--preset",
        default=None,
        metavar="FILE",
        help="open with this preset (ours or a Kohya GUI .json) loaded",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="make the demo model and dataset if missing and load the demo preset",
    )
    p.add_argument(
        "--share", action="store_true", help="also make a temporary public gradio.live link (requires --auth)"
    )
    p.add_argument("--inbrowser", action="store_true", help="open the page in the browser")
    p.add_argument(
        "--presets-dir",
        default=None,
        metavar="DIR",
        help="folder of your saved presets (default ~/.lora_gui/presets)",
    )
    p.add_argument(
        "--models-dir",
        default=None,
        metavar="DIR",
        help="folder of your base models for the Model Quick Pick (default: the one set in the app)",
    )
    return p.parse_args(argv)


def is_loopback(host: str) -> bool:
    """Whether only this computer can reach `host`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """'USER:PASS' -> (user, pass); raises ValueError when either part is empty."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be USER:PASS, both non-empty (e.g. --auth me:secret)")
    return user, password


def exposure_problem(args: argparse.Namespace) -> str | None:
    """Why these flags would open the trainer to others without a password, or None."""
    if not is_loopback(args.host) and not args.auth:
        return (
            f"--host {args.host} lets other computers reach the trainer, which can read "
            "and write files on this one. Add --auth USER:PASS, or leave --host out to "
            "keep it on this computer (127.0.0.1)."
        )
    if args.share and not args.auth:
        return "--share makes a public link anyone can open. Add --auth USER:PASS to protect it."
    return None


def ensure_demo(root: Path = ROOT) -> None:
    """Make the tiny demo model and dataset under `root`/demo when they are missing."""
    model, dataset = root / "demo" / "model", root / "demo" / "dataset"
    steps = []
    if not (model / "model_index.json").is_file():
        steps.append(
            [
                sys.executable,
                str(root / "scripts" / "make_tiny_model.py"),
                "--arch",
                "sd15",
                "--format",
                "diffusers",
                "--out",
                str(model),
            ]
        )
    if not dataset.is_dir() or not any(dataset.iterdir()):
        steps.append([sys.executable, str(root / "scripts" / "make_demo_dataset.py"), "--out", str(dataset)])
    for cmd in steps:
        print("Making the demo:", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, cwd=root)


def _anchor_paths(values: dict[str, Any], root: Path) -> None:
    """Relative folder/model paths of the demo preset point into `root` (the project)."""
    from trainer.config import FIELDS

    if Path.cwd().resolve() == root:
        return
    for name, spec in FIELDS.items():
        value = values.get(name)
        if (
            spec.widget
            and spec.widget.startswith("path")
            and isinstance(value, str)
            and value.strip()
            and not Path(value).is_absolute()
        ):
            values[name] = str(root / value)


def app_options(args: argparse.Namespace) -> Any:
    """The page's starting state from the flags (raises PresetError for a bad --preset)."""
    from lora_gui.app import AppOptions
    from lora_gui.handlers import preset_record
    from lora_gui.presets import DEFAULT_USER_DIR, read_preset

    options = AppOptions(
        lang=args.lang, user_dir=Path(args.presets_dir) if args.presets_dir else DEFAULT_USER_DIR
    )
    if Path.cwd().resolve() != ROOT:
        options.demo_model = str(ROOT / "demo" / "model")
    if args.models_dir:
        options.models_dir = str(Path(args.models_dir).expanduser().resolve())
    # The 📂 picker lists this computer's folders: only for this computer or behind --auth.
    options.file_browser = is_loopback(args.host) or bool(args.auth)
    preset = DEMO_PRESET if args.demo else (Path(args.preset) if args.preset else None)
    if preset is not None:
        loaded = read_preset(preset)
        if args.demo:
            _anchor_paths(loaded.values, ROOT)
        options.values = loaded.values
        options.preset, options.preset_record = str(preset), preset_record(preset.stem, loaded)
        notes = "\n".join(f"- {n}" for n in loaded.notes)
        options.preset_note = f"Loaded **{preset.stem}**." + (f"\n\n{notes}" if notes else "")
    return options


def launch_kwargs(args: argparse.Namespace, options: Any, hosts: Any = None) -> dict[str, Any]:
    """Everything passed to launch(), explicitly, so no environment variable decides.

    No folder is served: the files the app makes are allowed one by one as it offers them
    (lora_gui.app.ServedFiles). `hosts` (a lora_gui.security.HostPolicy, by default the
    one for --host) refuses requests for other host names and cross-site origins."""
    from lora_gui.app import CSS
    from lora_gui.security import HostPolicy

    hosts = hosts or HostPolicy.for_bind(args.host)
    return {
        "server_name": args.host,
        "server_port": args.port,
        "share": bool(args.share),
        "auth": parse_auth(args.auth),
        "inbrowser": bool(args.inbrowser),
        "allowed_paths": [],
        "app_kwargs": {"middleware": [hosts.middleware()]},
        "num_workers": 0,  # no static-file worker processes (they would skip the host check)
        "ssr_mode": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "max_file_size": "5mb",
        "css": CSS,
        "show_error": False,
        "footer_links": ["gradio", "settings"],
    }  # every event is private: no API page


def serve(args: argparse.Namespace, block: bool = True) -> Any:
    """Build the page and start serving it; returns the Blocks (block=False: for tests)."""
    from lora_gui.app import make_app
    from lora_gui.security import HostPolicy

    options = app_options(args)
    app = make_app(options)
    demo = app.blocks
    demo.queue(default_concurrency_limit=4)
    hosts = HostPolicy.for_bind(args.host)
    os.environ.pop("GRADIO_ALLOWED_PATHS", None)  # read by launch() when allowed_paths is []
    # quiet: Gradio's own banner suggests share=True, which here needs --share and --auth.
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(args, options, hosts))
    print(f"LoRA trainer: open {demo.local_url} in your browser (Ctrl+C to quit)", flush=True)
    if demo.share_url:
        hosts.add(demo.share_url)
        print(f"Public link (password protected): {demo.share_url}", flush=True)
    if block:
        stop_on_signals()
        try:
            try:
                while demo.is_running:
                    time.sleep(0.1)
            except KeyboardInterrupt:  # Ctrl+C, SIGTERM or SIGHUP (the share tunnel ends at exit)
                pass
            demo.close(verbose=False)  # quiet: after a SIGHUP the terminal may be gone
            finish_run(app.controller.runner)
            app.page.estimate.wait_idle(120)  # torch must not be mid-estimate as Python exits
        finally:
            app.page.tools.tensorboard.stop()
    return demo


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a service manager, a closed terminal) end the app like Ctrl+C:
    the run stops after its step and saves, then the app exits (a second one aborts).
    A SIGHUP that is ignored (the app started under nohup) stays ignored. After a SIGHUP,
    what would go to the terminal goes to /dev/null (writing to a closed one fails)."""
    terminal = [fd for fd in (1, 2) if os.isatty(fd)]

    def interrupt(signum: int, frame: Any) -> None:
        if signum == getattr(signal, "SIGHUP", None) and terminal:
            null = os.open(os.devnull, os.O_WRONLY)
            for fd in terminal:
                os.dup2(null, fd)
            os.close(null)
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, interrupt)


def finish_run(runner: Any) -> None:
    """On Ctrl+C (or SIGTERM / SIGHUP), a running training stops after its step and saves
    (Ctrl+C again quits)."""
    if runner.running:
        try:  # after a SIGHUP the terminal may be gone; the save matters, not the message
            print(
                "Stopping the training run after the current step so that it saves... "
                "(press Ctrl+C again to quit at once)",
                flush=True,
            )
        except OSError:
            pass
        runner.stop()
        runner.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = exposure_problem(args)
    if problem is None:
        try:
            parse_auth(args.auth)
        except ValueError as exc:
            problem = str(exc)
    if problem:
        print(f"gui.py: {problem}", file=sys.stderr)
        return EXIT_USAGE
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        if args.demo:
            ensure_demo(ROOT)
        serve(args, block=True)
    except subprocess.CalledProcessError as exc:
        print(f"gui.py: making the demo failed ({exc}); see the output above.", file=sys.stderr)
        return 1
    except Exception as exc:
        from lora_gui.presets import PresetError

        if isinstance(exc, PresetError):
            print(f"gui.py: cannot load the preset: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, OSError):
            print(
                f"gui.py: cannot serve on {args.host}:{args.port} ({exc}). Is another copy "
                "running? Try --port 7861.",
                file=sys.stderr,
            )
            return 1
        raise
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
