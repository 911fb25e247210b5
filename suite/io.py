"""Atomic file writes and JSONL helpers.

Every file the suite produces (datasets, metrics, results, tables) is written
to a temporary file in the same directory and renamed into place, so a crash
never leaves a half-written file where a reader (or Snakemake) expects a
complete one. The file gets the user's normal permissions (``0666`` less the
umask), not the temporary file's ``0600``.

Logs are the exception: ``append_jsonl`` adds one line at a time (a crash keeps
every finished step). A crash or a full disk can cut the last line short; the
next reader drops that line with a warning naming the file (``read_jsonl``) and
the next append removes it first, while a bad line anywhere else is an error
naming the file and the line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator


class SuiteWarning(UserWarning):
    """Something the suite recovered from or read leniently; the CLI shows it as one ``warning:`` line."""


class JsonlError(json.JSONDecodeError):
    """A JSONL line that is not JSON, with the file and line number in the message."""

    def __init__(self, path: str | os.PathLike, lineno: int, err: json.JSONDecodeError, line: str, fix: str):
        ValueError.__init__(self, f"{path}, line {lineno}: not valid JSON ({err.msg}, column {err.colno}): "
                                  f"{line.rstrip()[:80]!r}; {fix}")
        self.msg, self.doc, self.pos = err.msg, err.doc, err.pos
        self.lineno, self.colno, self.path = lineno, err.colno, Path(path)


class DiskFullError(OSError):
    """No space left while writing ``path``."""

    def __init__(self, path: str | os.PathLike | None):
        where = str(path) if path is not None else "a file (its name was not reported)"
        super().__init__(errno.ENOSPC, f"disk full while writing {where}: free space and rerun with --resume")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it was raised from) says the disk is full: ``ENOSPC``, torch's
    ``enforce fail at inline_container.cc`` while saving, or safetensors' ``StorageFull``."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFullError) or (isinstance(err, OSError) and err.errno == errno.ENOSPC):
            return True
        text = str(err)
        if ("No space left on device" in text or "StorageFull" in text or "os error 28" in text
                or (isinstance(err, RuntimeError) and "inline_container.cc" in text
                    and ("PytorchStreamWriter" in text or "unexpected pos" in text or "write" in text))):
            return True
        err = err.__cause__ or err.__context__
    return False


@contextlib.contextmanager
def naming_disk_full(path: str | os.PathLike):
    """Inside the block, a full disk (:func:`is_disk_full`) is raised as :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except Exception as err:
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            raise DiskFullError(path) from err
        raise


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (and put it back at once)
    os.umask(mask)
    return mask


def normal_mode() -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file: ``0666`` less the umask."""
    return 0o666 & ~_umask()


def samples_path(result: str | os.PathLike) -> Path:
    """The per-sample file an evaluation writes beside its results JSON: ``<result>.samples.jsonl``."""
    return Path(str(result) + ".samples.jsonl")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with naming_disk_full(path):
            os.chmod(tmp, normal_mode())  # mkstemp makes it 0600
            yield tmp
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _cut_off(line: str, last: bool) -> bool:
    """A last line that an interrupted append left: no newline at its end (or only NUL bytes)."""
    return last and (not line.endswith("\n") or not line.strip("\x00\r\n\t "))


def read_jsonl(path: str | os.PathLike, tolerate_partial_tail: bool = True) -> list[dict]:
    """The rows of a JSONL file (blank lines skipped).

    A cut-off last line (no newline at its end: an append interrupted by a crash or a full disk) is dropped
    with a :class:`SuiteWarning` naming the file when ``tolerate_partial_tail`` (the default, for logs);
    any other line that is not JSON raises :class:`JsonlError` naming the file and the line.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if tolerate_partial_tail and _cut_off(line, i == len(lines)):
                warnings.warn(f"{path}: dropped its cut-off last line {i} ({len(line)} characters, no newline): "
                              "a write interrupted by a crash or a full disk", SuiteWarning, stacklevel=2)
                break
            fix = ("the last line was cut off by an interrupted write: delete it" if _cut_off(line, i == len(lines))
                   else "fix or delete that line (or the file, to have it written again)")
            raise JsonlError(path, i, err, line, fix) from None
    return rows


def _repair_tail(path: Path) -> None:
    """End ``path`` with a newline before appending: drop a cut-off last line (with a warning), or end a
    complete one that lacks its newline."""
    try:
        f = open(path, "rb+")
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
            f.write(b"\n")
        except ValueError:
            f.truncate(start)
            warnings.warn(f"{path}: dropped its cut-off last line ({size - start} bytes, no newline): "
                          "a write interrupted by a crash or a full disk", SuiteWarning, stacklevel=3)


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one row and flush it to disk (metrics survive a crash). A last line an earlier crash cut
    short is dropped first, so the new row starts on a line of its own."""
    path = Path(path)
    with naming_disk_full(path):
        _repair_tail(path)
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written directory into place, replacing any old one."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        old = final_dir.with_name(final_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)
