"""Output checks, atomic file writes, content hashes and provenance records.

Everything bioaug writes (checkpoints, stores, ``.h5ad`` files, reports) goes through
these helpers: data is written to a temporary file in the destination directory, flushed
to disk and renamed over the target, so a crash or a full disk never leaves a
half-written file where a good one was. Files get the mode the user's umask gives (as
``open()`` would), so colleagues on shared storage can read them.

Before any long work a command calls :func:`check_output` on each output path. The rule
it enforces: a command never writes over one of its own inputs, nor over a file or folder
it did not make; it replaces an earlier output only when that output is recognisably of
its own kind (:data:`OUTPUT_KINDS`) and the user asked for it. It also checks the
destination is writable, so a read-only folder is reported at once rather than after the
work. :func:`describe_os_error` turns an operating-system error into the one-line message
the command line prints.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from bioaug import __version__
from bioaug.errors import BioaugError, ConfigError

PathLike = str | os.PathLike


def read_yaml_mapping(path: PathLike, what: str, keys: str) -> dict[str, Any]:
    """The mapping a YAML file holds (``{}`` for an empty file), not validated further.

    A missing file, a YAML syntax error (with its line) or a file holding something other
    than a mapping is a :class:`ConfigError` naming ``what`` the file should be
    (``"run config"``) and the ``keys`` it takes (``"options"``, ``"keys (steps:, …)"``).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else p
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"a {what} is a mapping of {keys}, not {type(data).__name__}", where=p)
    return data


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


# -- what a command may write over --------------------------------------------------------
@dataclass(frozen=True)
class OutputKind:
    """One kind of output a command writes, and how to recognise one written earlier.

    ``is_dir``: the output is a directory (recognised by any of ``markers``, files bioaug
    writes inside it; ``"a+b"`` means both ``a`` and ``b``) or a single file (recognised by
    ``recognise(path)``).
    """

    description: str
    is_dir: bool
    markers: tuple[str, ...] = ()
    recognise: Callable[[Path], bool] | None = None

    def matches(self, path: Path) -> bool:
        """Whether the existing ``path`` is an output of this kind."""
        if self.is_dir:
            return path.is_dir() and any(all((path / part).exists() for part in m.split("+"))
                                         for m in self.markers)
        return path.is_file() and self.recognise is not None and self.recognise(path)


def is_bioaug_h5ad(path: Path) -> bool:
    """Whether ``path`` is an HDF5 ``.h5ad`` file carrying ``uns["bioaug"]`` (written by us)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return "uns" in f and "bioaug" in f["uns"]
    except (OSError, ImportError):
        return False


def is_bioaug_json(path: Path) -> bool:
    """Whether ``path`` is a JSON document whose ``$id`` or ``title`` names bioaug (e.g. the
    protocol JSON Schema written by ``bioaug protocol schema --out``)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and any("bioaug" in str(doc.get(k, "")) for k in ("$id", "title"))


def is_bioaug_table(path: Path) -> bool:
    """Whether ``path`` is a profile table bioaug exported (pycytominer layout: a CSV or
    Parquet file whose first column is a ``Metadata_`` column)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            with open(path, encoding="utf-8") as fh:
                names = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError, ValueError, ImportError):
        return False
    return bool(names) and names[0].strip('"').startswith("Metadata_")


#: PNG text-chunk keyword and value prefix that mark a picture bioaug drew; pass
#: ``metadata=PNG_METADATA`` to matplotlib's ``savefig`` so :func:`is_bioaug_png` knows it.
PNG_SOFTWARE = "bioaug"
PNG_METADATA = {"Software": f"{PNG_SOFTWARE} {__version__}"}


def is_bioaug_png(path: Path) -> bool:
    """Whether ``path`` is a PNG whose ``Software`` text chunk starts with ``bioaug``."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            while header := fh.read(8):
                if len(header) < 8:
                    return False
                length, kind = int.from_bytes(header[:4], "big"), header[4:]
                if kind in (b"IDAT", b"IEND"):
                    return False
                body = fh.read(length)
                fh.read(4)  # CRC
                if kind == b"tEXt":
                    key, _, value = body.partition(b"\0")
                    if key == b"Software" and value.startswith(PNG_SOFTWARE.encode()):
                        return True
    except OSError:
        return False
    return False


#: kind name → how to recognise it. The markers are the files each stage writes first (a
#: store's header, a run's config/checkpoint, a report's report.json …).
OUTPUT_KINDS: dict[str, OutputKind] = {
    "store": OutputKind("crop store", True, ("header.json",)),
    "run": OutputKind("training run", True, ("checkpoint.pt", "config.yaml+protocol.yaml")),
    "report": OutputKind("evaluation report", True, ("report.json",)),
    "sweep": OutputKind("sweep directory", True, ("sweep.json",)),
    "invariance": OutputKind("invariance study", True, ("invariance.json",)),
    "download": OutputKind("download folder", True, (".bioaug-fetch.json",)),
    "demo": OutputKind("demo directory", True, ("summary.md", "full/plan.json",
                                                "quick/plan.json", "tiny/plan.json")),
    "h5ad": OutputKind(".h5ad written by bioaug", False, recognise=is_bioaug_h5ad),
    "schema": OutputKind("JSON file written by bioaug", False, recognise=is_bioaug_json),
    "png": OutputKind("picture drawn by bioaug", False, recognise=is_bioaug_png),
    "table": OutputKind("profile table exported by bioaug", False, recognise=is_bioaug_table),
}


def _resolved(path: PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).resolve()


def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out.is_relative_to(inp) and out.exists():  # a new file in an input folder is fine
        return "is part of"
    if inp.is_relative_to(out):
        return "contains"
    return None


def check_writable(path: PathLike, flag: str | None = "--out") -> None:
    """Fail now, with one clear line, if ``path`` (a file or directory to be written,
    existing or not) cannot be created or written: a read-only or full file system, no
    permission, a file where a directory is needed.

    The nearest existing directory is probed by creating and removing a small file, which
    is reliable where permission bits are not (network and read-only file systems, root).
    """
    target = _resolved(path)
    probe_dir = target if target.is_dir() else target.parent
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    name = f"{flag} {path}" if flag else str(path)
    if not probe_dir.is_dir():
        raise BioaugError(f"cannot write {name}: {probe_dir} is a file, not a directory",
                          hint="choose an output path whose folders are folders")
    probe = probe_dir / f".bioaug-write-test-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BioaugError(f"cannot write {name}: {exc.strerror or exc} ({probe_dir})",
                          hint=_OS_HINTS.get(exc.errno or 0, "choose a folder you can write"),
                          ) from None


def check_output(path: PathLike, kind: str, *, inputs: Iterable[PathLike | None] = (),
                 replace: bool = False, flag: str = "--out",
                 replace_flag: str | None = "--overwrite") -> Path:
    """Check an output path before any work is done; return it as a :class:`Path`.

    Call this at the start of every command for each path it will write. It raises a
    one-line :class:`BioaugError` when

    * ``path`` is one of ``inputs``, an existing file inside one (``--out STORE/obs.csv``)
      or a folder containing one (``--out`` the folder holding ``--data``): a command never
      writes over its input;
    * ``path`` exists but is a file where a directory is written, or the reverse;
    * ``path`` exists and is not recognisably an output of ``kind`` (a file bioaug did not
      make, a non-empty folder without the kind's marker file): never replaced;
    * ``path`` is an output of ``kind`` but ``replace`` is false (the hint names
      ``replace_flag``; ``None`` means the command never replaces, e.g. a one-shot file);
    * the destination cannot be written (see :func:`check_writable`).

    Parameters
    ----------
    path
        The output file or directory.
    kind
        A key of :data:`OUTPUT_KINDS` (``"h5ad"``, ``"store"``, ``"run"``, ``"report"`` …).
    inputs
        Every path the command reads (files or directories); ``None`` entries are ignored.
    replace
        Whether an existing output of this kind may be written over, resumed or extended
        (the user passed ``--overwrite``, ``--resume`` …; or the command always resumes).
    flag
        The option that named ``path``, used in messages.
    replace_flag
        The option that allows replacing, used in the hint.

    Examples
    --------
    >>> out = check_output(args.out, "h5ad", inputs=[args.data, *args.checkpoint],
    ...                    replace=args.overwrite)  # doctest: +SKIP
    """
    spec = OUTPUT_KINDS[kind]
    target = Path(path)
    resolved = _resolved(target)
    for inp in inputs:
        if inp is None:
            continue
        relation = _relation(resolved, _resolved(inp))
        if relation is not None:
            raise BioaugError(f"{flag} {target} {relation} the input {inp}; a command never "
                              "writes over its own input", hint=f"choose another {flag}")
    if target.exists():
        if spec.is_dir and not target.is_dir():
            raise BioaugError(f"{flag} {target} is a file, not a directory (a "
                              f"{spec.description} is a directory)",
                              hint=f"choose a new or empty directory for {flag}")
        if not spec.is_dir and target.is_dir():
            raise BioaugError(f"{flag} {target} is a directory; give a file name",
                              hint=f"e.g. {flag} {target / ('out' + _example_suffix(kind))}")
        empty_dir = spec.is_dir and not any(target.iterdir())
        if not empty_dir:
            if not spec.matches(target):
                what = "a folder" if spec.is_dir else "a file"
                raise BioaugError(f"{flag} {target} is {what} bioaug did not write (not a "
                                  f"{spec.description}); refusing to replace it",
                                  hint=f"choose a new {'or empty ' if spec.is_dir else ''}"
                                  f"{flag}")
            if not replace:
                hint = (f"pass {replace_flag} to replace it, or choose another {flag}"
                        if replace_flag else f"choose another {flag}")
                article = "an" if spec.description[0] in "aeiou" else "a"
                raise BioaugError(f"{flag} {target} already holds {article} {spec.description}",
                                  hint=hint)
    check_writable(target, flag)
    return target


def ensure_free_space(directory: PathLike, n_bytes: int, what: str) -> None:
    """BioaugError now when ``directory`` (or its nearest existing parent) has fewer than
    ``n_bytes`` free: some writers (HDF5, memory maps) cannot fail cleanly half-way."""
    probe = _resolved(directory)
    while not probe.exists():
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < n_bytes:
        raise BioaugError(f"disk full: {what} needs about {_size(n_bytes)} but {probe} has "
                          f"{_size(free)} free",
                          hint="free some space (or write elsewhere) and run the command again")


def preallocate(path: PathLike) -> None:
    """Reserve the disk blocks of an existing file (e.g. a fresh ``.npy`` memory map) so a
    full disk is an error now, not a crash (SIGBUS) when a page is written later."""
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return  # the file system cannot reserve blocks; nothing more to do
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
            return


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def _example_suffix(kind: str) -> str:
    return ".h5ad" if kind == "h5ad" else ""


_OS_HINTS: dict[int, str] = {
    errno.ENOSPC: "free some space (or write elsewhere) and run the command again",
    errno.EDQUOT: "free some space (or write elsewhere) and run the command again",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EACCES: "check the permissions, or write somewhere else",
    errno.EPERM: "check the permissions, or write somewhere else",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "give a file name, not a folder",
}


def describe_os_error(exc: OSError, context: str | None = None) -> BioaugError:
    """The one-line user error for an operating-system error (what failed, and where).

    ``context`` (e.g. ``"while writing --out crops/"``) is added when the error itself
    names no file, as a failed ``write()`` does.
    """
    where = exc.filename if exc.filename is not None else None
    if where is not None and exc.filename2 is not None:
        where = f"{exc.filename} → {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = f"disk full ({reason})"
    if context and where is None:
        reason = f"{reason} {context}"
    return BioaugError(reason, where=where, hint=_OS_HINTS.get(exc.errno or 0))


def _create_temp(target: Path, suffix: str) -> Path:
    """A new empty file next to ``target`` created with mode 0o666 minus the umask."""
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(target.parent))


#: below this many free bytes, a writer's failure is taken for a full disk
DISK_FULL_BYTES = 1 << 20


def _disk_full(exc: BaseException, directory: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, (OSError, RuntimeError)):
        # torch.save and h5py report a full disk in their own words ("file write failed",
        # "unexpected pos …"): judge by the space left where the file was being written
        with contextlib.suppress(OSError):
            return shutil.disk_usage(directory).free < DISK_FULL_BYTES
    return False


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file keeps the target's suffix (``.h5ad``, ``.pt`` …) so libraries that
    look at extensions behave. On any exception the temporary file is removed and the
    previous ``path`` (if any) is untouched.
    """
    target = require_file_path(path, what="a file name to write to")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(target, suffix if suffix is not None else target.suffix)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        full = _disk_full(exc, target.parent)
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if full:
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
