"""The run folder: one run at a time, and no file lost or touched that mmcore did not write.

A recipe's ``output_dir`` can point anywhere (a shared recipe, a typo, a home
folder), so a run only ever writes, moves or deletes the names in `RUN_FILES`.
A fresh run refuses a folder that already holds a run unless told: ``--resume``
continues it, ``--overwrite`` moves the old run's files into
``.previous/<time>/`` first. `RunLock` keeps a second ``mm train`` out of a
folder in use; the kernel drops the lock when its holder dies, so a killed
run's lock is taken over without guessing from process ids.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from mmcore.errors import ConfigError

RUN_FILES = ("checkpoints", "metrics.jsonl", "model", "logs", "ranks.json")
LOCK_FILE = ".mmcore-run.lock"
PREVIOUS = ".previous"


class RunLock:
    """An exclusive ``flock`` on ``<run>/.mmcore-run.lock``, which also names its holder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a killed run's lock was taken over. Refuses a live holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(fd)
                os.close(fd)
                raise ConfigError(
                    f"run folder {self.path.parent} is in use by {describe(holder)}; wait for it to end, or choose another output_dir=..."
                ) from None
            if same_file(fd, self.path):  # not a lock file its last holder unlinked meanwhile
                break
            os.close(fd)
        previous = read_holder(fd)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": " ".join(sys.argv)}).encode(),
            0,
        )
        self.fd = fd
        return f"took over the lock of {describe(previous)}, which is no longer running" if previous else None

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


def read_holder(fd: int) -> dict | None:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"process {holder.get('pid')} on {holder.get('host')} (started {started}: {holder.get('command')})"


def same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def existing_run_files(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (folder / name).exists()]


def refuse_unless_fresh(folder: Path) -> None:
    """A fresh run starts only in a folder that holds no run."""
    found = existing_run_files(folder)
    if found:
        raise ConfigError(
            f"{folder} already holds a run ({', '.join(found)}); continue it with --resume, or pass "
            f"--overwrite to move those files into {folder / PREVIOUS}/ and start afresh"
        )


def move_aside(folder: Path) -> Path | None:
    """``--overwrite``: the old run's files go to ``.previous/<time>/``, nothing else is touched."""
    found = existing_run_files(folder)
    if not found:
        return None
    dest = folder / PREVIOUS / time.strftime("%Y%m%d-%H%M%S")
    suffix = 0
    while dest.exists():
        suffix += 1
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{suffix}")
    dest.mkdir(parents=True)
    for name in found:
        os.replace(folder / name, dest / name)
    return dest
