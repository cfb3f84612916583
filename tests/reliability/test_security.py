"""Security defaults: no model code runs unless asked, safetensors over pickles, verified TLS."""

from __future__ import annotations

import http.server
import pickle
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stella_rag import ChromaStore, DialogueEncoder, SentenceEncoder, StoreUnavailableError, connect


@pytest.fixture
def recorded_loads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every ``SentenceTransformer(...)`` the core makes."""
    import sentence_transformers

    original = sentence_transformers.SentenceTransformer
    calls: list[dict[str, Any]] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", recording)
    return calls


def test_trust_remote_code_is_off_by_default(
    tiny_model: str, tiny: SentenceEncoder, tmp_path: Path, recorded_loads: list[dict[str, Any]]
) -> None:
    # a fresh cache_folder is a fresh process-wide cache key, so each one really loads
    SentenceEncoder(tiny_model, device="cpu", cache_folder=str(tmp_path / "a")).load()
    DialogueEncoder(tiny_model, general=tiny, device="cpu", cache_folder=str(tmp_path / "b"))
    ChromaStore(
        "remote-code",
        encoder=SentenceEncoder(tiny_model, device="cpu", cache_folder=str(tmp_path / "c")),
    )
    assert len(recorded_loads) >= 3  # (plus the shared tiny model, if this loads it first)
    assert all(call["trust_remote_code"] is False for call in recorded_loads)


def test_trust_remote_code_only_when_asked(
    tiny_model: str, tmp_path: Path, recorded_loads: list[dict[str, Any]]
) -> None:
    SentenceEncoder(
        tiny_model, device="cpu", cache_folder=str(tmp_path / "d"), trust_remote_code=True
    ).load()
    assert [call["trust_remote_code"] for call in recorded_loads] == [True]


class _Exploit:
    """Unpickling this writes a marker file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture
def spied_torch_load(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import torch

    original = torch.load
    calls: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[:1])
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls


def test_safetensors_preferred_over_a_pickle(
    tiny_model: str, tiny: SentenceEncoder, tmp_path: Path, spied_torch_load: list[Any]
) -> None:
    """A folder with both formats is read from model.safetensors; the pickle is never opened."""
    folder = tmp_path / "both-formats"
    shutil.copytree(tiny_model, folder)
    assert (folder / "model.safetensors").is_file()
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    text = ["the battery lasts two days"]
    vectors = SentenceEncoder(str(folder), device="cpu").encode_documents(text)
    assert not marker.exists()
    assert spied_torch_load == []
    np.testing.assert_allclose(vectors, tiny.encode_documents(text), atol=1e-6)


def test_a_malicious_pickle_alone_is_not_executed(
    tiny_model: str, tmp_path: Path, spied_torch_load: list[Any]
) -> None:
    """Only a pickle: transformers loads it with ``weights_only=True``, which refuses code."""
    folder = tmp_path / "pickle-only"
    shutil.copytree(tiny_model, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; running the code will not
        SentenceEncoder(str(folder), device="cpu").load()
    assert not marker.exists()


# --------------------------------------------------------------------------- TLS
@pytest.fixture
def self_signed_https(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 whose certificate no CA signed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_tls_certificates_are_verified(self_signed_https: int) -> None:
    secret = "tls-secret-token-9"
    with pytest.raises(StoreUnavailableError) as info:
        connect(
            server=f"https://127.0.0.1:{self_signed_https}",
            headers={"X-Chroma-Token": secret},
        )
    message = str(info.value)
    assert "over HTTPS" in message and "CERTIFICATE_VERIFY_FAILED" in message
    assert secret not in message
