"""Atomic file writes, content hashes and provenance records.

Everything bioaug writes (checkpoints, stores, ``.h5ad`` files, reports) goes through
these helpers: data is written to a temporary file in the destination directory, flushed
to disk and renamed over the target, so a crash or a full disk never leaves a
half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from bioaug import __version__
from bioaug.errors import BioaugError

PathLike = str | os.PathLike


def require_file_path(path: PathLike, flag: str | None = None, *, what: str = "a file name",
                      hint: str | None = None) -> Path:
    """``path`` as a Path, or a clear error when it is an existing directory (checked
    before a long job starts, so no work is lost on a mistyped output)."""
    target = Path(path)
    if target.is_dir():
        name = f"{flag} {target}" if flag else str(target)
        raise BioaugError(f"{name} is a directory; give {what}", hint=hint)
    return target


def require_dir_path(path: PathLike, flag: str = "--out", *, what: str = "directory") -> Path:
    """``path`` as a Path, or a clear error when it is an existing file."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise BioaugError(f"{flag} {target} is a file, not a {what}",
                          hint="give a new or existing directory")
    return target


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file keeps the target's suffix (``.h5ad``, ``.pt`` …) so libraries that
    look at extensions behave. On any exception the temporary file is removed and the
    previous ``path`` (if any) is untouched.
    """
    target = require_file_path(path, what="a file name to write to")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
            raise BioaugError(
                f"disk full while writing {target}; the previous file (if any) is intact",
                hint="free some space and run the command again",
            ) from exc
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open()`` that only replaces ``path`` once the ``with`` block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_yaml(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def atomic_save(path: PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and rename the result over ``path`` (e.g. ``torch.save``)."""
    with atomic_path(path) as tmp:
        writer(tmp)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _fsync_file(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content (a git-free input hash for provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(**extra: Any) -> dict[str, Any]:
    """A provenance record: bioaug/python/torch versions, time, plus ``extra`` fields."""
    record: dict[str, Any] = {
        "bioaug_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        record["torch"] = importlib.metadata.version("torch")
    record.update(extra)
    return record
