"""Files on disk, safely: crash-safe writes, and TOML files read with reasons a person reads.

A file or folder the trainer writes appears complete under its name, or not at all.

Everything the trainer writes for keeps (LoRA files, training states, presets, the
latent cache) goes to a hidden temporary name in the same folder, is flushed to the disk,
then renamed into place: `write_file_atomic` (bytes), `write_file_atomic_with` (a writer
that wants the path: safetensors, numpy), `write_folder_atomic` (a folder of files).
A crash, SIGKILL or power cut leaves at worst a hidden `.<name>.tmp-<pid>` behind, which
`clean_stale_temps` removes at the next start; the file or folder under the real name is
always the previous complete one or the new complete one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# `.<name>.tmp-<pid>` (files and folders being written), `.<name>.old-<pid>` (a folder
# being replaced). The pid tells whether the writer is still alive.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def temp_name(path: Path, kind: str = "tmp") -> Path:
    """The hidden sibling that `path` is written to before the rename."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def describe_os_error(exc: OSError) -> str:
    """The cause of a failed write in words a person can act on."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "the folder is read-only or not writable"
    if exc.errno == errno.ENAMETOOLONG:
        return "the file name or its path is too long for this file system"
    return exc.strerror or str(exc)


def fsync_dir(folder: Path) -> None:
    """Make renames inside `folder` durable (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file that something else wrote (a library given its path) to the disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _remove_quietly(path: Path) -> None:
    """Remove a temp file or folder after a failed write; a second error must not hide the first."""
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def write_file_atomic(path: Path, data: bytes) -> Path:
    """Replace `path` with `data` in one step. Raises OSError; the old file is then untouched."""
    return write_file_atomic_with(path, lambda tmp: tmp.write_bytes(data))


def write_file_atomic_with(path: Path, write: Callable[[Path], object], *, sync_folder: bool = True) -> Path:
    """Replace `path` with the file that `write(temp_path)` creates, in one step.

    For writers that want a path or a file of their own (safetensors, numpy): `write`
    creates the hidden temp file, which is then flushed to the disk and renamed over
    `path`. Raises what `write` raises, or OSError; the temp file is then removed and the
    old file untouched. `sync_folder=False` leaves the rename to the OS's own pace, for a
    cache whose lost file only costs recomputing it.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
        if sync_folder:
            fsync_dir(path.parent)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def write_folder_atomic(folder: Path, fill: Callable[[Path], object]) -> Path:
    """Replace `folder` with the one that `fill(temp_folder)` fills, in one step.

    `fill` writes its files into the empty hidden temp folder; each is then flushed to
    the disk and the folder moved into place (`replace_dir`). Raises what `fill` raises,
    or OSError; the temp folder is then removed and an older `folder` stays as it was.
    """
    folder = Path(folder)
    tmp = temp_name(folder)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        fill(tmp)
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                fsync_file(path)
        fsync_dir(tmp)
        replace_dir(tmp, folder)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return folder


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the complete folder `tmp` to `target`, replacing an older `target`.

    Folders cannot be swapped in one rename, so the old one first steps aside to a hidden
    `.old` name; if the process dies between the two renames, `clean_stale_temps` puts it
    back. `target` is thus always absent-with-a-backup, old or new, never half-written.
    """
    backup = None
    if target.exists():
        backup = temp_name(target, "old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    fsync_dir(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def interrupted_backup(target: Path) -> Path | None:
    """The complete older `target` that a killed `replace_dir` left as `.<name>.old-<pid>`
    (its writer gone, `target` missing), or None."""
    target = Path(target)
    if target.exists():
        return None
    try:
        found = [
            entry
            for entry in target.parent.glob(f".{glob.escape(target.name)}.old-*")
            if (m := _TEMP_NAME.match(entry.name))
            and m["name"] == target.name
            and not pid_alive(int(m["pid"]))
        ]
    except OSError:
        return None
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def restore_interrupted(target: Path) -> str | None:
    """Put back the older `target` a killed folder replacement left aside; what was done, or None."""
    backup = interrupted_backup(target)
    if backup is None:
        return None
    try:
        os.replace(backup, target)
    except OSError:
        return None
    return f"restored {target} from {backup.name} (a save was interrupted while replacing it)"


def clean_stale_temps(folder: Path) -> list[str]:
    """Remove what killed writers left in `folder`; returns what was done, for the log.

    A `.tmp` file or folder is deleted. An `.old` folder is renamed back when its
    target is missing (the writer died between the two renames), else deleted.
    Writers that are still running are left alone.
    """
    done: list[str] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return done
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if not m or pid_alive(int(m["pid"])):
            continue
        target = entry.with_name(m["name"])
        try:
            if m["kind"] == "old" and not target.exists():
                os.replace(entry, target)
                done.append(f"restored {target.name} (a save was interrupted while replacing it)")
            elif entry.is_dir():
                shutil.rmtree(entry)
                done.append(f"removed the unfinished {entry.name}")
            else:
                entry.unlink()
                done.append(f"removed the unfinished {entry.name}")
        except OSError:
            continue
    return done


def load_toml(path: str | Path) -> dict:
    """The file's tables. Raises ValueError: '<path> does not exist', 'cannot read ...' or
    'is not valid TOML (...)'."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc})") from None
