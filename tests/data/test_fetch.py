"""The fetch path against a loopback HTTP server (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from bioaug.data import bbbc021
from bioaug.data.fetch import (
    check_archive,
    download,
    fetch_dataset,
    load_card,
    plate_entries,
    safe_extract,
)
from bioaug.errors import BioaugError, ConfigError, DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves bytes from ``server.files`` with optional Range support; logs requests."""

    def do_GET(self) -> None:
        srv = self.server
        name = self.path.lstrip("/")
        srv.log.append((name, self.headers.get("Range")))  # type: ignore[attr-defined]
        data = srv.files.get(name)  # type: ignore[attr-defined]
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng and srv.ranges:  # type: ignore[attr-defined]
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = getattr(srv, "cut_after", None)
        if cut is not None:  # a dropped connection: announce everything, send part of it
            srv.cut_after = None  # type: ignore[attr-defined]
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.log, srv.ranges = {}, [], True  # type: ignore[attr-defined]
    srv.cut_after = None  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _url(srv: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/"


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _card(tmp_path: Path, srv: http.server.HTTPServer, files: list[dict], **extra: object
          ) -> Path:
    card = {"bioaug_dataset_card": 1, "name": "bbbc021", "title": "test", "licence": "test",
            "base_url": "http://invalid.example/", "files": files, **extra}
    p = tmp_path / "card.yaml"
    p.write_text(yaml.safe_dump(card))
    return p


def test_shipped_cards_are_valid() -> None:
    for name in ("bbbc021", "cifar10", "cifar100", "mnist"):
        card = load_card(name)
        assert card.name == name and card.files and card.licence
        assert all(f.sha256 or f.md5 for f in card.files)
    b = load_card("bbbc021")
    assert b.plate_archives is not None and "{plate}" in b.plate_archives.template
    assert b.channels == ["DAPI", "Tubulin", "Actin"]
    with pytest.raises(ConfigError, match=r"unknown dataset card 'bbbc22'.*did you mean"):
        load_card("bbbc22")


def test_resumed_download(server: http.server.HTTPServer, tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(300_000)
    server.files["big.bin"] = data  # type: ignore[attr-defined]
    dest = tmp_path / "big.bin"
    dest.with_name("big.bin.part").write_bytes(data[:123_456])  # an interrupted download
    info = download(_url(server) + "big.bin", dest, size=len(data),
                    sha256=hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == data and info["resumed_from"] == 123_456 and info["verified"]
    assert server.log == [("big.bin", "bytes=123456-")]  # type: ignore[attr-defined]
    assert not dest.with_name("big.bin.part").exists()


def test_dropped_connection_then_resume(server: http.server.HTTPServer, tmp_path: Path) -> None:
    data = np.random.default_rng(1).bytes(200_000)
    server.files["f.bin"] = data  # type: ignore[attr-defined]
    server.cut_after = 50_000  # type: ignore[attr-defined]
    dest = tmp_path / "f.bin"
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(DataError, match="interrupted") as e:
        download(_url(server) + "f.bin", dest, sha256=sha)
    assert "run the command again to resume" in e.value.format()
    part = dest.with_name("f.bin.part")
    assert part.stat().st_size == 50_000 and not dest.exists()
    info = download(_url(server) + "f.bin", dest, sha256=sha)
    assert info["resumed_from"] == 50_000 and dest.read_bytes() == data
    assert server.log[-1] == ("f.bin", "bytes=50000-")  # type: ignore[attr-defined]


def test_server_without_range_restarts(server: http.server.HTTPServer, tmp_path: Path) -> None:
    data = b"0123456789" * 1000
    server.files["f"] = data  # type: ignore[attr-defined]
    server.ranges = False  # type: ignore[attr-defined]
    dest = tmp_path / "f"
    dest.with_name("f.part").write_bytes(b"XXXX")  # stale bytes that must not survive
    info = download(_url(server) + "f", dest, md5=hashlib.md5(data).hexdigest())
    assert dest.read_bytes() == data and info["resumed_from"] == 0


def test_checksum_mismatch(server: http.server.HTTPServer, tmp_path: Path) -> None:
    server.files["f"] = b"the wrong content"  # type: ignore[attr-defined]
    dest = tmp_path / "f"
    with pytest.raises(DataError, match="sha256 checksum mismatch") as e:
        download(_url(server) + "f", dest, sha256="0" * 64)
    assert "expected " + "0" * 64 in e.value.format()
    assert not dest.exists() and not dest.with_name("f.part").exists()
    with pytest.raises(DataError, match="HTTP 404"):
        download(_url(server) + "missing", dest)


def test_malicious_archives_are_refused(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    cases = {
        "climb": (_zip({"ok.txt": b"fine", "../evil.txt": b"x"}), "'..'"),
        "absolute": (_zip({"/tmp/evil.txt": b"x"}), "absolute path"),
        "link": (_zip({"a.txt": b"a"}, links={"link": "/etc/passwd"}), "symbolic link"),
    }
    for name, (data, message) in cases.items():
        z = tmp_path / f"{name}.zip"
        z.write_bytes(data)
        with pytest.raises(DataError, match=message):
            safe_extract(z, "zip", dest)
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as tf:
        info = tarfile.TarInfo("sneaky")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc"
        tf.addfile(info)
    (tmp_path / "t.tar.gz").write_bytes(tbuf.getvalue())
    with pytest.raises(DataError, match="link or special file"):
        check_archive(tmp_path / "t.tar.gz", "tar", dest)
    assert list(dest.iterdir()) == []  # nothing was written, not even ok.txt
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="not a valid zip archive"):
        safe_extract(tmp_path / "bad.zip", "zip", dest)


def _plate_zip(twin: Path, plate: str) -> bytes:
    """A plate zip as the Broad serves it: WeekN_PLATE/<file>.tif."""
    week = plate.split("_")[0]
    folder = twin / week / plate
    return _zip({f"{plate}/{f.name}": f.read_bytes() for f in sorted(folder.iterdir())})


def test_fetch_bbbc021_end_to_end(server: http.server.HTTPServer, twin: Path,
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = server.files  # type: ignore[attr-defined]
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        files[name] = (twin / name).read_bytes()
    plates = bbbc021.load_metadata(twin).plates
    for p in plates:
        files[f"BBBC021_v1_images_{p}.zip"] = _plate_zip(twin, p)
    entries = [{"name": n, "url": n, "size": len(files[n]),
                "sha256": hashlib.sha256(files[n]).hexdigest()}
               for n in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV)]
    card = _card(tmp_path, server, entries,
                 plate_archives={"template": "BBBC021_v1_images_{plate}.zip",
                                 "sha256": {plates[0]: hashlib.sha256(
                                     files[f"BBBC021_v1_images_{plates[0]}.zip"]).hexdigest()}})
    out = tmp_path / "bbbc021"
    monkeypatch.setenv("BIOAUG_DATA_BASE_URL", _url(server))  # the card's URL is replaced
    summary = fetch_dataset("bbbc021", out, card=card, plates=["all"])
    assert set(summary["files"].values()) == {"downloaded"}
    assert summary["base_url"] == _url(server)
    info = bbbc021.info(out)
    assert info["images"]["fields_missing"] == 0
    assert info["images"]["fields_complete"] == len(bbbc021.load_metadata(twin).fields)
    assert not list(out.glob("*.zip"))  # archives are removed after extraction
    # a second run downloads nothing
    n = len(server.log)  # type: ignore[attr-defined]
    again = fetch_dataset("bbbc021", out, card=card, plates=["all"])
    assert set(again["files"].values()) == {"already complete"}
    assert len(server.log) == n  # type: ignore[attr-defined]
    # a plate that is not in the table
    with pytest.raises(DataError, match="unknown plate"):
        fetch_dataset("bbbc021", out, card=card, plates=["Week1_99999"])


def test_fetch_rejects_a_malicious_plate_zip(server: http.server.HTTPServer, twin: Path,
                                            tmp_path: Path) -> None:
    files = server.files  # type: ignore[attr-defined]
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        files[name] = (twin / name).read_bytes()
    plate = bbbc021.load_metadata(twin).plates[0]
    files[f"BBBC021_v1_images_{plate}.zip"] = _zip({f"{plate}/a.tif": b"x",
                                                    "../../outside.txt": b"x"})
    card = _card(tmp_path, server, [{"name": n, "url": n} for n in
                                    (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV)],
                 plate_archives={"template": "BBBC021_v1_images_{plate}.zip"})
    out = tmp_path / "sub" / "bbbc021"
    with pytest.raises(DataError, match="climbs out"):
        fetch_dataset("bbbc021", out, card=card, plates=[plate], base_url=_url(server))
    assert not (out / plate).exists() and not (tmp_path / "outside.txt").exists()


def test_fetch_natural_tar(server: http.server.HTTPServer, tmp_path: Path) -> None:
    """A CIFAR-style tar.gz is verified by MD5 and unpacked; then prepared."""
    import pickle

    rng = np.random.default_rng(0)
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as tf:
        def add(name: str, obj: object) -> None:
            data = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
        for i in range(1, 6):
            add(f"data_batch_{i}", {b"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8),
                                    b"labels": [i % 10, 1, 2, 3]})
        add("test_batch", {b"data": rng.integers(0, 255, (3, 3072), dtype=np.uint8),
                           b"labels": [0, 1, 9]})
    data = tbuf.getvalue()
    server.files["cifar-10-python.tar.gz"] = data  # type: ignore[attr-defined]
    card = _card(tmp_path, server, [{"name": "cifar-10-python.tar.gz",
                                     "url": "cifar-10-python.tar.gz", "extract": "tar",
                                     "md5": hashlib.md5(data).hexdigest()}])
    card.write_text(card.read_text().replace("name: bbbc021", "name: cifar10"))
    out = tmp_path / "cifar"
    s = fetch_dataset("cifar10", out, card=card, base_url=_url(server))
    assert s["files"] == {"cifar-10-python.tar.gz": "downloaded"}
    from bioaug.data.natural import prepare_natural

    store = prepare_natural("cifar10", out, tmp_path / "store")
    assert len(store) == 23 and store.obs["split"].value_counts().to_dict() == {"train": 20,
                                                                               "test": 3}
    shutil.rmtree(out / "cifar-10-batches-py")
    again = fetch_dataset("cifar10", out, card=card, base_url=_url(server))
    assert again["files"]["cifar-10-python.tar.gz"] == "downloaded"  # gone → fetched again


def test_plate_images_readable_after_fetch(server: http.server.HTTPServer, twin: Path,
                                           tmp_path: Path) -> None:
    files = server.files  # type: ignore[attr-defined]
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        files[name] = (twin / name).read_bytes()
    plate = bbbc021.load_metadata(twin).plates[1]
    files[f"BBBC021_v1_images_{plate}.zip"] = _plate_zip(twin, plate)
    card = _card(tmp_path, server, [{"name": n, "url": n} for n in
                                    (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV)],
                 plate_archives={"template": "BBBC021_v1_images_{plate}.zip"})
    out = tmp_path / "b"
    fetch_dataset("bbbc021", out, card=card, plates=[plate.split("_")[1]],
                  base_url=_url(server), keep_archives=True)
    assert (out / f"BBBC021_v1_images_{plate}.zip").exists()
    tif = next((out / plate).glob("*.tif"))
    assert tifffile.imread(tif).dtype == np.uint16


def test_card_file_names_stay_inside_out(server: http.server.HTTPServer, tmp_path: Path
                                         ) -> None:
    for bad, why in (("../../x", "climbs out"), ("/etc/x", "absolute path"),
                     ("C:/x", "absolute path"), ("", "must not be empty")):
        card = _card(tmp_path, server, [{"name": bad, "url": "x"}])
        with pytest.raises(ConfigError, match=fr"files\[0\]\.name: .*{why}"):
            fetch_dataset("bbbc021", tmp_path / "out", card=card)
    card = _card(tmp_path, server, [], name="../../x")
    with pytest.raises(ConfigError, match="name: String should match pattern"):
        load_card(card)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "x").exists()
    card = _card(tmp_path, server, [], plate_archives={"template": "../{plate}.zip"})
    with pytest.raises(ConfigError, match=r"template gives .*climbs out"):
        plate_entries(load_card(card), ["Week1_1"])


def test_fetch_never_writes_into_a_folder_it_did_not_make(server: http.server.HTTPServer,
                                                          tmp_path: Path) -> None:
    server.files["a.txt"] = b"abc"  # type: ignore[attr-defined]
    card = _card(tmp_path, server, [{"name": "a.txt", "url": "a.txt"}])
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "a.txt").write_text("my chapter")
    with pytest.raises(BioaugError, match="bioaug did not write"):
        fetch_dataset("bbbc021", mine, card=card, base_url=_url(server))
    assert (mine / "a.txt").read_text() == "my chapter"
    out = tmp_path / "fresh"
    fetch_dataset("bbbc021", out, card=card, base_url=_url(server))
    assert (out / "a.txt").read_bytes() == b"abc" and (out / ".bioaug-fetch.json").is_file()
    fetch_dataset("bbbc021", out, card=card, base_url=_url(server))  # its own: resumed
