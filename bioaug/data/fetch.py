"""``bioaug data fetch``: download a dataset from its card (``datasets/<name>.yaml``).

A dataset card lists where the files of a dataset live (``base_url`` + relative ``url``), their
sizes and checksums where known, and whether to unpack them. Fetching

- **resumes** a partial download (``<file>.part``) with an HTTP ``Range`` request, and starts
  over when the server ignores it;
- **verifies** the size (card or ``Content-Length``) and the SHA-256 / MD5 checksum when the
  card has one; a mismatch deletes the download and is an error;
- **extracts safely**: every archive member is checked before anything is written (no
  absolute paths, no ``..``, no links or devices, nothing outside the destination), then
  unpacked into a temporary folder and moved into place;
- **skips** what is already complete (recorded in ``OUT/.bioaug-fetch.json``).

The card's base URL can be replaced (``base_url=`` / ``--base-url`` / ``BIOAUG_DATA_BASE_URL``)
to use a mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bioaug.errors import ConfigError, DataError, unknown_choice, validation_error
from bioaug.io import atomic_write_json, check_output
from bioaug.progress import progress

CARD_DIR = Path(__file__).resolve().parents[1] / "datasets"
RECORD = ".bioaug-fetch.json"
CHUNK = 1 << 20
ENV_BASE_URL = "BIOAUG_DATA_BASE_URL"


# -- the card -------------------------------------------------------------------------
def plain_file_name(name: str) -> str:
    """``name`` when it is a relative path that stays inside the destination folder.

    A file name from a card (or a plate name put into a template) must not be absolute,
    name a drive, or climb out with ``..``: ``fetch`` writes only inside ``--out``.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name.strip() or not pure.parts:
        raise ValueError("a file name must not be empty")
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"{name!r} is an absolute path; give a name inside the destination")
    if ".." in pure.parts:
        raise ValueError(f"{name!r} climbs out of the destination ('..'); give a plain name")
    return name


class FileEntry(BaseModel):
    """One downloadable file (``name``: where it goes, relative to the destination)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    url: str
    size: int | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    md5: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    extract: Literal["zip", "tar"] | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name_stays_inside(cls, value: str) -> str:
        return plain_file_name(value)


class ArchiveSet(BaseModel):
    """Per-plate archives (BBBC021): ``template`` with ``{plate}``; checksums per plate."""

    model_config = ConfigDict(extra="forbid")
    template: str
    extract: Literal["zip", "tar"] = "zip"
    sizes: dict[str, int | None] = Field(default_factory=dict)
    sha256: dict[str, str | None] = Field(default_factory=dict)
    note: str | None = None


class DatasetCard(BaseModel):
    """A dataset card: provenance, licence, layout and the files to fetch."""

    model_config = ConfigDict(extra="forbid")
    bioaug_dataset_card: Literal[1] = 1
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str
    description: str = ""
    homepage: str | None = None
    citation: list[str] = Field(default_factory=list)
    licence: str
    base_url: str
    files: list[FileEntry] = Field(default_factory=list)
    plate_archives: ArchiveSet | None = None
    layout: str = ""
    channels: list[str] = Field(default_factory=list)
    checksums_note: str | None = None
    #: where the data comes from and what bioaug ships of it (credit, bundled files)
    source: dict[str, Any] | None = None


def card_path(name: str) -> Path:
    return CARD_DIR / f"{name}.yaml"


def available_cards() -> list[str]:
    return sorted(p.stem for p in CARD_DIR.glob("*.yaml")) if CARD_DIR.is_dir() else []


def load_card(name_or_path: str | os.PathLike) -> DatasetCard:
    """A shipped card by name (``bbbc021``) or a card file."""
    p = Path(name_or_path)
    if not p.suffix:
        if not CARD_DIR.is_dir():
            raise ConfigError(f"the dataset cards folder {CARD_DIR} is missing",
                              hint="pass a card file with --card")
        if str(name_or_path) not in available_cards():
            raise ConfigError(unknown_choice("dataset card", str(name_or_path),
                                             available_cards()))
        p = card_path(str(name_or_path))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read dataset card: {exc.strerror or exc}", where=p) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"dataset card is not valid YAML: {exc}", where=p) from exc
    try:
        return DatasetCard.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, DatasetCard, what="invalid dataset card", where=p) from None


def join_url(base: str, rel: str) -> str:
    if "://" in rel:
        return rel
    return base.rstrip("/") + "/" + rel.lstrip("/")


# -- downloading ---------------------------------------------------------------------------
def _hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, *, size: int | None = None, sha256: str | None = None,
           md5: str | None = None) -> None:
    """Raise :class:`DataError` when ``path`` does not match the expected size or checksum."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DataError(f"size mismatch: {actual} bytes, expected {size}", where=path)
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = _hash(path, algo)
            if got != want:
                raise DataError(f"{algo} checksum mismatch: got {got}, expected {want}",
                                where=path, hint="the download is corrupt or the mirror holds "
                                "another file; it was deleted, run the command again")


def download(url: str, dest: Path, *, size: int | None = None, sha256: str | None = None,
             md5: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Download ``url`` to ``dest``, resuming ``dest.part``; verify; return what happened."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        part.unlink()
        start = 0
    resumed = False
    headers = {"User-Agent": "bioaug-fetch", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        req = urllib.request.Request(url, headers=headers)
    except ValueError as exc:  # not a URL at all, e.g. a base URL without http://
        raise DataError(f"download failed: {exc}", where=url,
                        hint="--base-url must be a full URL such as https://host/path") from exc
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to fetch: the part may be whole
            resp = None
        else:
            raise DataError(f"download failed: HTTP {exc.code} {exc.reason}", where=url) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"download failed: {reason}", where=url,
                        hint="check the network or use a mirror with --base-url") from exc
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            if start and status == 206:
                resumed = True
                mode = "ab"
            else:
                start, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            expected_total = start + int(length) if length is not None else size
            bar = progress(total=expected_total, desc=dest.name, unit="B", unit_scale=True,
                           initial=start)
            got = start
            try:
                with open(part, mode) as fh:
                    while block := resp.read(CHUNK):
                        fh.write(block)
                        got += len(block)
                        bar.update(len(block))
                    fh.flush()
                    os.fsync(fh.fileno())
            except (OSError, http.client.HTTPException) as exc:
                raise DataError(f"download interrupted after {got} bytes ({exc})", where=url,
                                hint="run the command again to resume it") from exc
            finally:
                bar.close()
            if expected_total is not None and got < expected_total:
                raise DataError(f"download interrupted after {got} of {expected_total} bytes",
                                where=url, hint="run the command again to resume it")
    try:
        verify(part, size=size, sha256=sha256, md5=md5)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return {"file": str(dest), "bytes": dest.stat().st_size, "resumed_from": start if resumed
            else 0, "verified": bool(sha256 or md5)}


# -- safe extraction ----------------------------------------------------------------------
def _check_member(name: str, dest: Path, archive: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"archive member {name!r} has an absolute path; refusing to extract",
                        where=archive)
    if ".." in pure.parts:
        raise DataError(f"archive member {name!r} climbs out of the destination ('..'); "
                        "refusing to extract", where=archive)
    target = (dest / Path(*pure.parts)).resolve() if pure.parts else dest.resolve()
    if dest.resolve() not in (target, *target.parents):
        raise DataError(f"archive member {name!r} would land outside {dest}", where=archive)
    return target


def check_archive(path: Path, kind: str, dest: Path) -> list[str]:
    """Validate every member of an archive before extracting anything; return the names."""
    names: list[str] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    mode = (info.external_attr >> 16) & 0xFFFF
                    if stat.S_ISLNK(mode):
                        raise DataError(f"archive member {info.filename!r} is a symbolic link; "
                                        "refusing to extract", where=path)
                    _check_member(info.filename, dest, path)
                    names.append(info.filename)
        else:
            with tarfile.open(path) as tf:
                for m in tf.getmembers():
                    if not (m.isfile() or m.isdir()):
                        raise DataError(f"archive member {m.name!r} is a link or special file; "
                                        "refusing to extract", where=path)
                    _check_member(m.name, dest, path)
                    names.append(m.name)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataError(f"not a valid {kind} archive: {exc}", where=path) from exc
    return names


def safe_extract(path: Path, kind: str, dest: Path) -> list[str]:
    """Extract an archive into ``dest`` after :func:`check_archive`; top-level entries moved
    into place only when everything was unpacked."""
    check_archive(path, kind, dest)
    tmp = dest / f".extract-{path.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    target = _check_member(info.filename, tmp, path)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
        else:
            with tarfile.open(path) as tf:
                for m in tf.getmembers():
                    target = _check_member(m.name, tmp, path)
                    if m.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    if src is None:
                        continue
                    with src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
        top = sorted(p.name for p in tmp.iterdir())
        for name in top:
            final = dest / name
            if final.is_dir() and (tmp / name).is_dir():
                shutil.rmtree(final)
            elif final.exists():
                final.unlink()
            os.replace(tmp / name, final)
        return top
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the driver ------------------------------------------------------------------------------
def _load_record(out: Path) -> dict[str, Any]:
    f = out / RECORD
    if f.is_file():
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
    return {}


def _fetch_entry(entry: FileEntry, base: str, out: Path, record: dict[str, Any],
                 keep_archives: bool) -> dict[str, Any]:
    done = record.setdefault("done", {})
    dest = out / entry.name
    prev = done.get(entry.name)
    if prev and ((prev.get("extracted") and all((out / t).exists() for t in prev["extracted"]))
                 or (dest.exists() and dest.stat().st_size == prev.get("bytes"))):
        return {"name": entry.name, "status": "already complete"}
    if dest.exists() and not entry.extract:
        try:
            verify(dest, size=entry.size, sha256=entry.sha256, md5=entry.md5)
            if entry.size or entry.sha256 or entry.md5:
                done[entry.name] = {"bytes": dest.stat().st_size}
                atomic_write_json(out / RECORD, record)
                return {"name": entry.name, "status": "already complete"}
        except DataError:
            dest.unlink()
    url = join_url(base, entry.url)
    info = download(url, dest, size=entry.size, sha256=entry.sha256, md5=entry.md5)
    status = "resumed" if info["resumed_from"] else "downloaded"
    result: dict[str, Any] = {"name": entry.name, "status": status, "bytes": info["bytes"],
                              "verified": info["verified"]}
    entry_record: dict[str, Any] = {"bytes": info["bytes"], "sha256": _hash(dest, "sha256")}
    if entry.extract:
        top = safe_extract(dest, entry.extract, out)
        entry_record["extracted"] = top
        result["extracted"] = top
        if not keep_archives:
            dest.unlink()
    done[entry.name] = entry_record
    atomic_write_json(out / RECORD, record)
    return result


def plate_entries(card: DatasetCard, plates: list[str]) -> list[FileEntry]:
    arch = card.plate_archives
    if arch is None:
        raise ConfigError(f"the {card.name} card has no per-plate archives; drop --plates")
    entries = []
    for p in plates:
        name = arch.template.format(plate=p)
        try:
            plain_file_name(name)
        except ValueError as exc:
            raise ConfigError(f"plate_archives.template gives {exc}", hint="plate names and "
                              "the template must make plain file names") from None
        entries.append(FileEntry(name=name, url=name, size=arch.sizes.get(p),
                                 sha256=arch.sha256.get(p), extract=arch.extract))
    return entries


def fetch_dataset(name: str, out: str | os.PathLike, *, plates: list[str] | None = None,
                  base_url: str | None = None, card: str | os.PathLike | None = None,
                  keep_archives: bool = False) -> dict[str, Any]:
    """Fetch a dataset's files (and, for BBBC021, the named plates; ``["all"]`` for all).

    Parameters
    ----------
    name
        A shipped dataset card (``bbbc021``, ``cifar10``, ``cifar100``, ``mnist``).
    out
        The download folder (resumed when fetched into before).
    plates
        BBBC021 plates to fetch too (``Week4_27481`` or ``27481``), or ``["all"]``.
    base_url
        A mirror to fetch from instead of the card's ``base_url`` (also
        ``$BIOAUG_DATA_BASE_URL``); ``file://`` URLs work.
    card
        A card file to use instead of the shipped one.
    keep_archives
        Keep archives after unpacking them.

    Returns
    -------
    dict
        ``dataset``, ``out``, ``base_url``, ``licence`` and ``files``: each file's status.

    Examples
    --------
    The two BBBC021 tables from a local mirror, checked against the card's sizes and
    SHA-256 checksums; a second fetch finds them complete:

    >>> import tempfile
    >>> from bioaug.data.bbbc021 import write_bundled_metadata
    >>> from bioaug.data.fetch import fetch_dataset
    >>> tmp = tempfile.mkdtemp()
    >>> mirror = write_bundled_metadata(f"{tmp}/mirror").as_uri()
    >>> fetch_dataset("bbbc021", f"{tmp}/bbbc021", base_url=mirror)["files"]
    {'BBBC021_v1_image.csv': 'downloaded', 'BBBC021_v1_moa.csv': 'downloaded'}
    >>> fetch_dataset("bbbc021", f"{tmp}/bbbc021", base_url=mirror)["files"]
    {'BBBC021_v1_image.csv': 'already complete', 'BBBC021_v1_moa.csv': 'already complete'}
    """
    c = load_card(card if card is not None else name)
    if card is None and c.name != name:
        raise ConfigError(f"card {card_path(name)} describes {c.name!r}, not {name!r}")
    if plates and c.plate_archives is None:
        raise ConfigError(f"the {c.name} card has no per-plate archives; drop --plates")
    base = base_url or os.environ.get(ENV_BASE_URL) or c.base_url
    # a download folder is resumed; any other non-empty folder is not ours to write into
    out = check_output(out, "download", replace=True)
    out.mkdir(parents=True, exist_ok=True)
    record = _load_record(out)
    if not (out / RECORD).is_file():  # claim the folder before the first byte arrives
        atomic_write_json(out / RECORD, record)
    results = [_fetch_entry(e, base, out, record, keep_archives) for e in c.files]
    if plates:
        from bioaug.data.bbbc021 import IMAGE_CSV, load_metadata, select_plates

        if not (out / IMAGE_CSV).exists():
            raise DataError(f"{IMAGE_CSV} is needed to list the plates", where=out)
        meta = load_metadata(out)
        chosen = meta.plates if [p.lower() for p in plates] == ["all"] else \
            sorted(select_plates(meta.fields, plates)["plate"].unique())
        for e in plate_entries(c, chosen):
            results.append(_fetch_entry(e, base, out, record, keep_archives))
    return {"dataset": c.name, "out": str(out), "base_url": base,
            "files": {r["name"]: r["status"] for r in results},
            "licence": c.licence}
