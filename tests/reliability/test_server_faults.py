"""A Chroma server that is down, hung, refusing credentials, or restarted mid-ingestion.

Credentials (header values) must never appear in an error message, a traceback or a log record.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import stella_rag
from stella_rag import (
    ChromaStore,
    StoreError,
    StoreUnavailableError,
    _client,
    _store,
    connect,
)
from stella_rag.testing import ChromaServer, FakeEncoder, free_port

SECRET = "s3cr3t-T0KEN-value-42"
HEADER_CASES = {
    "bearer": {"Authorization": f"Bearer {SECRET}"},
    "x-chroma-token": {"X-Chroma-Token": SECRET},
}


def _no_secret(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    assert SECRET not in shown
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert all(SECRET not in str(record.args) for record in caplog.records)


# --------------------------------------------------------------------------- down at start
@pytest.mark.parametrize("headers", [None, *HEADER_CASES.values()], ids=["none", *HEADER_CASES])
def test_server_down_at_start(headers: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError) as info:
        connect(server=f"127.0.0.1:{port}", headers=headers)
    seconds = time.perf_counter() - started
    print(f"down server reported in {seconds:.2f} s: {info.value}")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "chroma run" in str(info.value)
    assert seconds < 30  # a sanity bound; it takes well under a second
    _no_secret(info.value, caplog)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_hung_server_at_start(
    silent_server: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """chromadb alone would wait forever; connect() gives up after its timeout."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(_client, "_CONNECT_TIMEOUT_S", 1.0)
    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError) as info:
        connect(server=f"127.0.0.1:{silent_server}", headers=HEADER_CASES["bearer"])
    seconds = time.perf_counter() - started
    print(f"hung server reported in {seconds:.2f} s")
    assert f"127.0.0.1:{silent_server}" in str(info.value)
    assert "within 1 s" in str(info.value)
    assert seconds < 30
    _no_secret(info.value, caplog)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with a fixed status, recording the headers it got."""

    status = 401
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"error": "Unauthorized", "message": "bad token"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[tuple[int, list[dict[str, str]]]]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("headers", list(HEADER_CASES.values()), ids=list(HEADER_CASES))
def test_rejected_credentials(
    refusing_server: tuple[int, list[dict[str, str]]],
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port, seen = refusing_server
    with pytest.raises(StoreError) as info:
        connect(server=f"127.0.0.1:{port}", headers=headers)
    assert not isinstance(info.value, StoreUnavailableError)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "refused the credentials (HTTP 401)" in message
    assert next(iter(headers)) in message  # the header's name helps; its value never shows
    _no_secret(info.value, caplog)
    # the headers did reach the server
    name, value = next(iter(headers.items()))
    assert any(request.get(name) == value for request in seen)


@pytest.mark.parametrize("server", ["127.0.0.1:{port}", "https://127.0.0.1:{port}"])
def test_ssl_to_a_plain_http_server(
    refusing_server: tuple[int, list[dict[str, str]]],
    server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port, _ = refusing_server
    with pytest.raises(StoreUnavailableError) as info:
        connect(server=server.format(port=port), headers=HEADER_CASES["bearer"], ssl=True)
    assert f"127.0.0.1:{port} over HTTPS" in str(info.value)
    assert "SSL" in str(info.value) or "ssl" in str(info.value)
    _no_secret(info.value, caplog)


@pytest.mark.parametrize(
    ("server", "error"),
    [
        ("localhost", ValueError),
        ("localhost:port", ValueError),
        (":8000", ValueError),
        (8000, TypeError),
    ],
)
def test_bad_server_address(server: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="host:port"):
        connect(server=server)


def test_bad_headers() -> None:
    with pytest.raises(TypeError, match="headers must map strings to strings"):
        connect(server=f"127.0.0.1:{free_port()}", headers={"X-Chroma-Token": 123})  # type: ignore[dict-item]


def test_connect_is_exported() -> None:
    assert stella_rag.connect is connect


# --------------------------------------------------------------------------- a real server
@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """A server this test may stop and start (the session's shared one must stay up)."""
    server = ChromaServer(str(tmp_path / "chroma-data"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _passages(n: int) -> list[str]:
    return [f"server passage {i} about the battery {i * 31 % 97}" for i in range(n)]


def _assert_complete(store: ChromaStore, texts: list[str]) -> None:
    got = store.collection.get(include=["documents"])
    assert store.count() == len(texts) == len(set(got["ids"]))
    assert sorted(got["documents"]) == sorted(texts)


@pytest.mark.server
def test_connect_to_a_real_server_with_headers(chroma_server: ChromaServer) -> None:
    """A server without auth ignores extra headers; the client works and has a time limit."""
    client = connect(server=chroma_server.address, headers=HEADER_CASES["x-chroma-token"])
    store = ChromaStore("with-headers", encoder=FakeEncoder(48), client=client)
    store.add(["a b", "c d"])
    assert store.count() == 2
    assert client._server._session.timeout.read == _client._REQUEST_TIMEOUT_S
    client.delete_collection("with-headers")


@pytest.mark.server
@pytest.mark.slow
def test_server_restarted_mid_ingestion(
    own_server: ChromaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingestion retries with bounded backoff across the restart and completes."""
    monkeypatch.setattr(_store, "_CHUNK", 16)
    monkeypatch.setattr(_client, "_RETRY_DELAYS_S", (0.5, 1.0, 2.0, 4.0, 8.0, 16.0))
    retried: list[str] = []
    classify = _client.classify

    def counting(exc: BaseException) -> _client.Fault | None:
        fault = classify(exc)
        if fault is not None and fault.kind == "unreachable":
            retried.append(type(exc).__name__)
        return fault

    monkeypatch.setattr(_client, "classify", counting)
    store = ChromaStore(
        "restarted", encoder=FakeEncoder(48), client=connect(server=own_server.address)
    )
    texts = _passages(300)
    paused, go_on = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def on_chunk(report: stella_rag.AddReport) -> None:
        if len(report.ids) == 64:
            paused.set()
            go_on.wait(60)

    def ingest() -> None:
        try:
            outcome["report"] = store.index(texts, on_chunk=on_chunk)
        except Exception as exc:  # reported below
            outcome["error"] = exc

    worker = threading.Thread(target=ingest)
    worker.start()
    assert paused.wait(60)
    own_server.stop()  # the server goes away between two chunks...
    go_on.set()  # ...the ingestion carries on into it
    time.sleep(0.5)
    own_server.start()  # same port, same data
    worker.join(120)
    assert not worker.is_alive()
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]
    print(f"retried {len(retried)} connection errors: {sorted(set(retried))}")
    assert retried  # it did meet the outage
    assert (report.embedded, report.skipped) == (300, 0)
    _assert_complete(store, texts)
    again = store.index(texts)
    assert (again.embedded, again.skipped) == (0, 300)


@pytest.mark.server
@pytest.mark.slow
def test_server_gone_for_good_mid_ingestion(
    own_server: ChromaServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The retries run out: a clear error saying what was stored; a re-run completes it."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(_store, "_CHUNK", 16)
    monkeypatch.setattr(_client, "_RETRY_DELAYS_S", (0.1, 0.2, 0.4))
    client = connect(server=own_server.address, headers=HEADER_CASES["bearer"])
    store = ChromaStore("gone", encoder=FakeEncoder(48), client=client)
    texts = _passages(200)

    def on_chunk(report: stella_rag.AddReport) -> None:
        if len(report.ids) == 48:
            own_server.stop()

    with pytest.raises(StoreUnavailableError) as info:
        store.index(texts, on_chunk=on_chunk)
    message = str(info.value)
    print(message)
    assert f"127.0.0.1:{own_server.port}" in message
    assert "did not come back within 1 s" in message
    assert "the 48 passages before position 48 are stored" in message
    assert "Re-running the same call completes it without duplicates" in message
    assert info.value.report is not None and info.value.report.embedded == 48
    _no_secret(info.value, caplog)
    own_server.start()
    report = store.index(texts)
    assert (report.embedded, report.skipped) == (200 - 48, 48)
    _assert_complete(store, texts)
