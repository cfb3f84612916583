"""The warm encoder daemon: a real background process on a Unix socket, used by `search`."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ok_json, run

from stella_rag import (
    ChromaStore,
    CollectionNotFoundError,
    ModelNotAvailableError,
    SentenceEncoder,
    StoreError,
)
from stella_rag import daemon as daemon_module
from stella_rag.daemon import (
    DaemonEncoder,
    DaemonError,
    daemon_dir,
    daemon_status,
    start_daemon,
    stop_daemon,
)

pytestmark = pytest.mark.slow

TEXTS = ["where is the merrow tower", "the tower is in brackwater", "and how tall is it"]


@pytest.fixture
def own_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "d"
    monkeypatch.setenv("STELLA_RAG_DAEMON_DIR", str(folder))
    return folder


@pytest.fixture
def running(own_dir: Path, tiny_model: str) -> Iterator[Path]:
    start_daemon(preload=[tiny_model])
    yield own_dir
    stop_daemon()


def test_vectors_from_the_daemon_are_the_encoders_own(
    running: Path, tiny: SentenceEncoder, tiny_model: str
) -> None:
    remote = DaemonEncoder(tiny_model, device="cpu")
    assert (remote.model_id, remote.dim, remote.max_seq_length) == (
        tiny.model_id,
        tiny.dim,
        tiny.max_seq_length,
    )
    np.testing.assert_allclose(remote.encode_queries(TEXTS), tiny.encode_queries(TEXTS), atol=1e-6)
    np.testing.assert_allclose(
        remote.encode_documents(TEXTS), tiny.encode_documents(TEXTS), atol=1e-6
    )
    status = daemon_status()
    assert status is not None and status.pid != os.getpid()
    assert tiny.model_id in status.models
    # Only the owner can reach it: the socket and its key are private.
    for name in ("daemon.sock", "daemon.key"):
        assert (running / name).stat().st_mode & 0o077 == 0


def test_many_clients_at_once_each_get_their_own_vectors(
    running: Path, tiny: SentenceEncoder, tiny_model: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"question {i} about the merrow tower" for i in range(24)]
    expected = tiny.encode_queries(texts)
    remote = DaemonEncoder(tiny_model, device="cpu")
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: remote.encode_queries([texts[i]])[0], range(len(texts))))
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-6)


def test_start_is_idempotent_and_stop_removes_the_socket(running: Path) -> None:
    first = daemon_status()
    assert first is not None
    assert start_daemon().pid == first.pid
    assert stop_daemon() is True
    assert daemon_status() is None
    assert not (running / "daemon.sock").exists()
    assert stop_daemon() is False


def test_errors_in_the_daemon_are_raised_in_the_client(running: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="no-such-model"):
        _ = DaemonEncoder(str(tmp_path / "no-such-model")).dim
    assert daemon_status() is not None  # a bad request does not take the daemon down


def test_a_daemon_of_another_version_is_not_used(
    running: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "_version", lambda: "0.0.0-other")
    assert not DaemonEncoder.available()
    with pytest.raises(DaemonError, match="restart it"):
        _ = DaemonEncoder(tiny_model).dim


def test_the_daemon_exits_when_idle(own_dir: Path) -> None:
    start_daemon(idle_timeout=1)
    deadline = time.monotonic() + 30
    while daemon_status() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon_status() is None
    assert "idle for 1 s: exiting" in (own_dir / "daemon.log").read_text()


def test_a_folder_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv("STELLA_RAG_DAEMON_DIR", str(folder))
    with pytest.raises(DaemonError, match="private"):
        daemon_dir()


def test_a_store_opened_through_the_daemon_checks_and_searches_as_usual(
    running: Path, tiny: SentenceEncoder, tmp_path: Path
) -> None:
    local = ChromaStore("notes", path=tmp_path / "db", encoder=tiny)
    local.add(TEXTS)
    remote = ChromaStore.open("notes", path=tmp_path / "db", encoder_factory=DaemonEncoder)
    assert isinstance(remote.encoder, DaemonEncoder)
    assert [h.text for h in remote.search("how tall", k=3)] == [
        h.text for h in local.search("how tall", k=3)
    ]


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture
def indexed(tmp_path: Path, tiny_model: str) -> Path:
    (tmp_path / "notes.txt").write_text("\n\n".join(TEXTS), "utf-8")
    ok_json(run("index", "notes.txt", "--model", tiny_model, "--json", cwd=tmp_path))
    return tmp_path


def _imports(result_stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in result_stderr.splitlines() if "|" in line}


def test_search_uses_the_daemon_without_importing_torch(
    indexed: Path, tiny_model: str, own_dir: Path
) -> None:
    alone = run("search", "how tall", "--json", cwd=indexed, python=["-X", "importtime"])
    assert "torch" in _imports(alone.stderr)
    started = ok_json(run("daemon", "start", "--preload", tiny_model, "--json", cwd=indexed))
    try:
        assert started["running"] is True
        warm = run("search", "how tall", "--json", cwd=indexed, python=["-X", "importtime"])
        assert warm.returncode == 0, warm.stderr
        assert json.loads(warm.stdout) == json.loads(alone.stdout)
        imported = _imports(warm.stderr)
        assert "torch" not in imported and "sentence_transformers" not in imported
        assert ok_json(run("daemon", "status", "--json", cwd=indexed))["requests"] >= 2
        info = ok_json(run("info", "--model", tiny_model, "--json", cwd=indexed))
        assert info["daemon"]["running"] is True
        assert info["daemon"]["pid"] == started["pid"]
        # --no-daemon loads the model here again.
        cold = run("search", "how tall", "--no-daemon", cwd=indexed, python=["-X", "importtime"])
        assert "torch" in _imports(cold.stderr)
    finally:
        assert ok_json(run("daemon", "stop", "--json", cwd=indexed)) == {"stopped": True}
    assert ok_json(run("daemon", "status", "--json", cwd=indexed)) == {"running": False}
    info = run("info", "--model", tiny_model, cwd=indexed)
    assert "daemon: not running" in info.stdout


def test_search_after_the_daemon_was_killed_runs_in_process(
    indexed: Path, tiny_model: str, own_dir: Path
) -> None:
    status = start_daemon(preload=[tiny_model])
    os.kill(status.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while daemon_status() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (own_dir / "daemon.sock").exists()  # left behind by the killed process
    result = ok_json(run("search", "how tall", "--json", cwd=indexed))
    assert result["hits"][0]["text"].startswith("where is the merrow tower")
    # A new daemon takes the left-over socket's place.
    again = start_daemon()
    assert again.pid != status.pid
    stop_daemon()


def test_a_second_daemon_leaves_the_running_one_alone(running: Path) -> None:
    first = daemon_status()
    assert first is not None
    second = subprocess.run(
        [sys.executable, "-m", "stella_rag.daemon"], capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0
    assert "another stella-rag daemon is running" in second.stdout
    after = daemon_status()  # the key on disk is still the running daemon's
    assert after is not None and after.pid == first.pid


@pytest.mark.parametrize(
    "error",
    [
        ModelNotAvailableError("some/model", "some/model cannot be downloaded"),
        CollectionNotFoundError("c", ["a", "b"], " at '/tmp/db'"),
        StoreError("refused", report=None),
        DaemonError("gone"),
    ],
)
def test_errors_cross_process_boundaries(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert vars(back) == vars(error)
