"""Credentials for a Chroma server behind an authenticating proxy, and for Chroma Cloud."""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stella_rag import ChromaStore, StoreError, connect
from stella_rag.testing import ChromaServer, FakeEncoder

pytestmark = [pytest.mark.server]

TOKEN = "tok-5ecret-1a2b3c"
CLOUD_KEY = "ck-cloud-9z8y7x"


class _Proxy:
    """An HTTP proxy in front of a Chroma server that records the headers it receives and,
    like an authenticating proxy, answers 401 to requests without the expected header."""

    def __init__(self, upstream: ChromaServer, header: str, value: str) -> None:
        self.seen: list[dict[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items()}
                proxy.seen.append(headers)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if headers.get(header) != value:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(upstream.host, upstream.port, timeout=30)
                keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=keep)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bearer_proxy(chroma_server: ChromaServer) -> Iterator[_Proxy]:
    proxy = _Proxy(chroma_server, "Authorization", f"Bearer {TOKEN}")
    yield proxy
    proxy.close()


def _assert_secret_nowhere(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


def test_token_reaches_the_server_as_a_header(
    bearer_proxy: _Proxy, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    client = connect(server=bearer_proxy.address, token=TOKEN)
    store = ChromaStore("behind-proxy", encoder=FakeEncoder(), client=client)
    store.add(["the museum opens on monday", "the battery lasts two days"])
    assert store.search("the museum opens on monday", k=1)[0].text == "the museum opens on monday"
    assert len(bearer_proxy.seen) >= 4  # probe, then chromadb's own requests
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for h in bearer_proxy.seen)
    out = capsys.readouterr()
    _assert_secret_nowhere(TOKEN, caplog.text, out.out, out.err, repr(client), repr(store))


def test_a_refused_token_is_not_printed(
    bearer_proxy: _Proxy, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "tok-wrong-7f6e5d"
    with pytest.raises(StoreError, match="refused the credentials") as info:
        connect(server=bearer_proxy.address, token=wrong)
    assert bearer_proxy.seen[-1]["Authorization"] == f"Bearer {wrong}"
    out = capsys.readouterr()
    _assert_secret_nowhere(wrong, str(info.value), repr(info.value), caplog.text, out.out, out.err)
    with pytest.raises(StoreError):  # no token at all
        connect(server=bearer_proxy.address)


def test_x_chroma_token_header(chroma_server: ChromaServer) -> None:
    proxy = _Proxy(chroma_server, "X-Chroma-Token", TOKEN)
    try:
        client = connect(server=proxy.address, token=TOKEN, token_header="X-Chroma-Token")
        assert isinstance(client.heartbeat(), int)
        assert proxy.seen and all(h.get("X-Chroma-Token") == TOKEN for h in proxy.seen)
    finally:
        proxy.close()


def test_cloud_key_is_sent_and_never_printed(
    chroma_server: ChromaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Chroma Cloud's client, pointed at a local server through the proxy."""
    import chromadb

    from stella_rag import _client

    caplog.set_level(logging.DEBUG)
    proxy = _Proxy(chroma_server, "X-Chroma-Token", CLOUD_KEY)
    try:
        client = _client._connect_cloud(
            chromadb, CLOUD_KEY, None, None, host="127.0.0.1", port=proxy.port, ssl=False
        )
        store = ChromaStore("in-the-cloud", encoder=FakeEncoder(), client=client)
        store.add(["a passage in the cloud"])
        assert store.count() == 1
        assert all(h.get("X-Chroma-Token") == CLOUD_KEY for h in proxy.seen)
        with pytest.raises(StoreError, match="refused the API key") as info:
            _client._connect_cloud(
                chromadb, "ck-bad-000111", None, None, host="127.0.0.1", port=proxy.port, ssl=False
            )
        _assert_secret_nowhere("ck-bad-000111", str(info.value), caplog.text)
        _assert_secret_nowhere(CLOUD_KEY, caplog.text, repr(client))
    finally:
        proxy.close()


def test_cloud_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHROMA_API_KEY", raising=False)
    with pytest.raises(StoreError, match="CHROMA_API_KEY"):
        connect(cloud=True)
    with pytest.raises(ValueError, match="Chroma Cloud takes"):
        connect(server="127.0.0.1:1", api_key="x-key-1234")
    with pytest.raises(ValueError, match="server"):
        connect(token="x-token-1234")
