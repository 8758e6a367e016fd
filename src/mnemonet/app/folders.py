"""Run folders: each new run gets a folder of its own, and one process at a time works in it.

Two trainings started in the same second from one preset must not share a folder, and two processes
must never write one run (interleaved ``metrics.jsonl``, a ``config.yaml`` from one and weights from
the other). So:

- :func:`create_run_dir` names a folder ``<stem>-<YYYYmmdd-HHMMSS>-<6 hex digits>`` and creates it with
  an exclusive ``mkdir`` (it fails if the name exists), trying a new random suffix until one is free.
- :class:`RunLock` is held for as long as a process trains or resumes a run: ``RUN/.lock`` locked
  with ``fcntl.flock`` and holding the owner's pid and host. The kernel drops the lock when its process
  dies, even by ``kill -9``, so a lock left behind by a killed process is stale by construction: the
  next process takes it (its pid is no longer alive). A second live process gets a
  :class:`~mnemonet.errors.RunLockedError` naming the owner's pid. Where ``flock`` is missing (not
  POSIX) the file is created exclusively instead and a stale one is recognised by its dead pid.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType

from mnemonet.errors import RunLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


def run_dir_name(source: str) -> str:
    """``<preset or file stem>-<YYYYmmdd-HHMMSS>-<6 random hex digits>``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(source)).stem) or "run"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def create_run_dir(source: str, root: str | Path = "runs") -> Path:
    """Create a new, empty run folder under ``root`` that no other process can have created too.

    Args:
        source: preset name or config file; its stem starts the folder name.
        root: the folder that holds runs (created if missing).

    Returns:
        The created folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        path = root / run_dir_name(source)
        try:
            path.mkdir()  # exclusive: raises if another process took the name first
        except FileExistsError:
            continue
        return path


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _owner_text(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8").strip()
    return ""


def _parse_owner(text: str) -> tuple[int, str]:
    """``"pid 123 on host"`` -> ``(123, "host")``; ``(0, "")`` when unreadable."""
    match = re.match(r"pid (\d+) on (\S+)", text)
    return (int(match[1]), match[2]) if match else (0, "")


class RunLock:
    """An exclusive lock on a run folder, held by one process for the life of its training.

    Use as a context manager (``with RunLock(run_dir): ...``) or call :meth:`acquire` / :meth:`release`.

    Args:
        run_dir: the run folder (must exist).
        purpose: what the caller is about to do, for the message another process gets.

    Raises:
        RunLockedError: on acquire, when another live process holds the run.
    """

    def __init__(self, run_dir: str | Path, purpose: str = "training") -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _refuse(self, owner: str) -> RunLockedError:
        who = owner or "another process"
        return RunLockedError(
            f"{self.run_dir}: in use by {who}, which is training or resuming this run; wait for it to finish or "
            f"stop it (kill its pid; a stopped run resumes with --resume {self.run_dir}), then try again"
        )

    def acquire(self) -> RunLock:
        """Take the lock (stale locks of dead processes are taken over); returns self."""
        if self.held:
            return self
        owner = f"pid {os.getpid()} on {socket.gethostname()} ({self.purpose} since {time.strftime('%H:%M:%S')})"
        if fcntl is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._refuse(_owner_text(self.path)) from None
        else:  # pragma: no cover - not POSIX: an exclusive file, stale when its pid is dead
            fd = self._create_exclusive()
        os.ftruncate(fd, 0)
        os.write(fd, (owner + "\n").encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        return self

    def _create_exclusive(self) -> int:  # pragma: no cover - not POSIX
        for _ in range(2):
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                text = _owner_text(self.path)
                pid, host = _parse_owner(text)
                if host == socket.gethostname() and not _pid_alive(pid):
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()  # stale: its process is gone
                    continue
                raise self._refuse(text) from None
        raise self._refuse(_owner_text(self.path))

    def release(self) -> None:
        """Give the lock up (the lock file stays, empty; it holds no lock once closed)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        if fcntl is None:  # pragma: no cover - not POSIX
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


__all__ = ["LOCK_FILE", "RunLock", "create_run_dir", "run_dir_name"]
