"""Faults of an embedded database: an ingestion killed with SIGKILL, a read-only folder, a full
disk. Each ends in a clear error or a completed re-run; never a duplicate, never a lost passage.

The ingestion runs in a subprocess (``ingest_driver.py``), as a user's ``stella-rag index`` would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stella_rag import ChromaStore, StoreError, connect
from stella_rag.testing import FakeEncoder

DRIVER = Path(__file__).with_name("ingest_driver.py")


def _load_driver() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("stella_rag_ingest_driver", DRIVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


passages = _load_driver().passages


def _driver(model: str, db: Path, n: int, *extra: str) -> list[str]:
    return [sys.executable, str(DRIVER), model, str(db), str(n), *extra]


def _run(model: str, db: Path, n: int, *extra: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        _driver(model, db, n, *extra), capture_output=True, text=True, timeout=300, check=False
    )
    return done.returncode, done.stdout.splitlines()


def _start_and_kill(model: str, db: Path, n: int, after_lines: int, *extra: str) -> list[str]:
    """Start an ingestion, SIGKILL it once it has reported ``after_lines`` stored chunks."""
    process = subprocess.Popen(
        _driver(model, db, n, *extra), stdout=subprocess.PIPE, text=True, bufsize=1
    )
    lines: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if len(lines) >= after_lines:
                break
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert lines and all(line.startswith("chunk") for line in lines), lines
    return lines


def _open(db: Path, encoder: Any) -> ChromaStore:
    """Open the database afresh, as a new process would (Chroma caches one system per path)."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return ChromaStore("corpus", encoder=encoder, path=db)


def _assert_complete(store: ChromaStore, encoder: Any, texts: list[str]) -> None:
    """Every passage exactly once, and each one is its own nearest neighbour."""
    got = store.collection.get(include=["documents"])
    assert store.count() == len(texts)
    assert sorted(got["documents"]) == sorted(texts)
    assert len(set(got["ids"])) == len(texts)
    hits = store.search_many(encoder.encode_queries(texts), k=1)
    assert [h[0].text for h in hits] == texts


@pytest.mark.slow
def test_sigkill_mid_ingestion_then_rerun(tmp_path: Path, tiny_model: str, tiny: Any) -> None:
    """The tiny model's ingestion is killed between chunks; the same command completes it."""
    n = 400
    db = tmp_path / "db"
    lines = _start_and_kill(tiny_model, db, n, 4, "16", "0.05")
    stored = _open(db, tiny).count()
    print(f"killed after {lines[-1]!r}; {stored} of {n} passages stored")
    assert 4 * 16 <= stored < n
    assert stored % 16 == 0  # whole chunks only: each write is one transaction
    code, out = _run(tiny_model, db, n, "16")
    assert code == 0, out
    # the re-run embedded exactly the passages that were missing
    assert out[-1] == f"done {n - stored} {stored} {n}"
    store = _open(db, tiny)
    _assert_complete(store, tiny, passages(n))
    report = store.index(passages(n))  # the same ingestion once more: nothing to embed
    assert (report.embedded, report.skipped, store.count()) == (0, n, n)


@pytest.mark.slow
def test_sigkill_while_writing_then_rerun(tmp_path: Path) -> None:
    """Killed at full speed, twice, wherever it is (encoding or writing); then completed."""
    n = 3000
    db = tmp_path / "db"
    fake = FakeEncoder(48)
    counts = []
    for after in (2, 5):
        _start_and_kill("fake", db, n, after, "64")
        counts.append(_open(db, fake).count())
    print(f"stored after each kill: {counts} of {n}")
    assert 0 < counts[0] <= counts[1] < n
    code, out = _run("fake", db, n, "64")
    assert code == 0, out
    assert out[-1] == f"done {n - counts[1]} {counts[1]} {n}"
    _assert_complete(_open(db, fake), fake, passages(n))


def _run_read_only(db: Path, n: int) -> tuple[int, list[str], str]:
    """Run the driver with ``db`` read-only; returns the code, output and how it was done.

    As root, file modes do not stop writes, so the folder is bind-mounted read-only in a private
    mount namespace (``unshare -m``); elsewhere the files are made read-only with chmod.
    """
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [db, *db.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            code, out = _run("fake", db, n)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return code, out, "chmod"
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root without unshare(1): cannot make a folder read-only for root")
    import shlex

    q = shlex.quote(str(db))
    script = f"mount --bind {q} {q} && mount -o remount,bind,ro {q} && exec " + " ".join(
        shlex.quote(a) for a in _driver("fake", db, n)
    )
    done = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "mount" in done.stderr and done.returncode != 3:
        pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()[:200]}")
    return done.returncode, done.stdout.splitlines(), "read-only bind mount"


def test_read_only_database_folder(tmp_path: Path, snapshot: Any) -> None:
    db = tmp_path / "db"
    fake = FakeEncoder(48)
    ChromaStore("corpus", encoder=fake, path=db).add(passages(20))
    before = snapshot(_open(db, fake))
    code, out, how = _run_read_only(db, 50)
    print(f"read-only by {how}: {out[-1]}")
    assert code == 3
    assert out[-1].startswith("error StoreError")
    assert "read-only" in out[-1] or "readonly" in out[-1]
    assert str(db) in out[-1] or "'corpus'" in out[-1]
    # nothing changed, nothing broke: the database opens and completes normally afterwards
    assert snapshot(_open(db, fake)) == before
    code, out = _run("fake", db, 50)
    assert out[-1] == "done 30 20 50"


def test_file_where_the_database_folder_should_be(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "db"
    not_a_folder.write_text("hello")
    with pytest.raises(StoreError, match="cannot open a Chroma database") as info:
        connect(not_a_folder)
    assert str(not_a_folder) in str(info.value)
    with pytest.raises(StoreError):
        ChromaStore("corpus", encoder=FakeEncoder(48), path=not_a_folder)
    assert not_a_folder.read_text() == "hello"


@pytest.mark.slow
def test_disk_full_then_rerun(tmp_path: Path) -> None:
    """Writes beyond a file-size limit fail as on a full disk: a StoreError, then a clean re-run."""
    db = tmp_path / "db"
    n = 3000
    fake = FakeEncoder(48)
    ChromaStore("corpus", encoder=fake, path=db).add(passages(10))
    started = time.perf_counter()
    code, out = _run("fake", db, n, "512", "0", str(1_000_000))
    print(f"with a 1 MB file limit: {out[-1][:300]} ({time.perf_counter() - started:.1f} s)")
    assert code == 3
    assert out[-1].startswith("error StoreError")
    assert "disk" in out[-1] or "failed" in out[-1]
    assert "Re-running the same call completes it" in out[-1] or "error StoreError" in out[-1]
    code, out = _run("fake", db, n, "512")
    assert code == 0, out
    _, embedded, skipped, count = out[-1].split()
    assert int(count) == n
    assert int(embedded) + int(skipped) == n
    _assert_complete(_open(db, fake), fake, passages(n))


def test_duplicate_ids_never_appear_after_reindexing(tmp_path: Path) -> None:
    """The ids are hashes of the texts: the same corpus indexed twice is stored once."""
    fake = FakeEncoder(48)
    store = ChromaStore("corpus", encoder=fake, path=tmp_path / "db")
    first = store.index(passages(100))
    second = store.index(passages(100))
    assert (first.embedded, second.embedded, second.skipped) == (100, 0, 100)
    assert store.count() == 100
    got = store.collection.get(include=["embeddings"])
    assert np.allclose(
        np.asarray(got["embeddings"])[np.argsort(got["ids"])],
        fake.encode_documents([t for _, t in sorted(zip(first.ids, passages(100), strict=True))]),
    )
