"""Test helpers for code built on stella-rag: a deterministic fake encoder that needs no model.

``FakeEncoder`` behaves like :class:`~stella_rag.SentenceEncoder` (same methods, checks and
output types) but seeds each vector from a hash of the text, like LangChain's
``DeterministicFakeEmbedding`` and Chroma's ``MockEmbeddingFunction``: the same text always gets
the same vector, different texts get unrelated ones. Tokens are whitespace-separated words,
and each CJK character counts as one token.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validate import check_texts

__all__ = ["FakeEncoder"]

_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|\[SEP\]|[^\s\u3400-\u9fff\uf900-\ufaff]+")


class FakeEncoder:
    """A deterministic, hash-seeded stand-in for :class:`~stella_rag.SentenceEncoder`."""

    def __init__(
        self,
        dim: int = 16,
        *,
        model_id: str | None = None,
        max_seq_length: int = 512,
        normalize: bool = True,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.model_id = model_id or f"stella-rag/fake-{dim}d"
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.truncate_dim: int | None = None
        self.is_loaded = True
        self.device = "cpu"
        self.precision = "float32"
        self.calls = 0
        self.texts_encoded = 0

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        if self.normalize:
            vector /= np.linalg.norm(vector)
        return vector

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        self.calls += 1
        self.texts_encoded += len(items)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in items])

    encode_queries = encode_documents

    async def aencode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_documents(texts)

    aencode_queries = aencode_documents

    def count_tokens(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[int]:
        extra = 2 if special_tokens else 0
        return [len(_TOKEN.findall(t)) + extra for t in texts]

    def keep_last_tokens(self, text: str, n: int) -> str:
        if n <= 0:
            return ""
        spans = [m.start() for m in _TOKEN.finditer(text)]
        return text if len(spans) <= n else text[spans[-n] :]


_WORDS = """
a b the and of to is in it you he she they we
i my your have has been did not no yes what why how when
where which price battery phone play playing basketball table tennis because injury lately open
monday museum ticket cost how much old new reset hour hours user assistant question
answer passage weather rain sun city river bridge book
"""

_BASE_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'\"()-/")
    + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    + _WORDS.split()
    + list(
        "你好我他她它们的是不了在有人这中大为上个国和也子时道出说要去打篮球乒乓没最近因受伤吗呢价格多少钱"
    )
)


def build_bert_model(
    path: str,
    *,
    out_dim: int | None = 48,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    vocab_size: int | None = None,
    max_seq_length: int = 128,
    seed: int = 0,
) -> str:
    """Build and save a real (random-weight) sentence-transformers BERT model, shaped like Stella.

    BERT with a WordPiece vocabulary that has ``[SEP]``, English words and Chinese characters,
    mean pooling, and (like Stella's 1024 -> 1792 head) a Dense layer to ``out_dim``. Use small
    sizes for tests; ``layers=24, hidden=1024, heads=16, intermediate=4096, vocab_size=21128,
    out_dim=1792, max_seq_length=512`` gives the cost of Stella-large without downloading it.

    Returns:
        ``path``, a folder ``SentenceEncoder`` can load.
    """
    import os

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    os.makedirs(path, exist_ok=True)
    vocab = list(dict.fromkeys(_BASE_VOCAB))
    if vocab_size is not None:
        vocab += [f"[unused{i}]" for i in range(max(0, vocab_size - len(vocab)))]
    raw = os.path.join(path, "_hf")
    os.makedirs(raw, exist_ok=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max(512, max_seq_length),
    )
    BertModel(config).save_pretrained(raw)
    # A vocab.txt and a config naming the class: the fast BERT tokenizer in transformers 4 and 5.
    with open(os.path.join(raw, "vocab.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(vocab) + "\n")
    with open(os.path.join(raw, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        fh.write('{"tokenizer_class": "BertTokenizer", "do_lower_case": true}')
    AutoTokenizer.from_pretrained(raw).save_pretrained(raw)
    transformer = Transformer(raw, max_seq_length=max_seq_length)
    modules: list[torch.nn.Module] = [transformer, Pooling(hidden, pooling_mode="mean")]
    if out_dim is not None:
        modules.append(Dense(hidden, out_dim, activation_function=torch.nn.Identity()))
    # No model card: writing one looks models up on the hub.
    SentenceTransformer(modules=modules, device="cpu").save(path, create_model_card=False)
    import shutil

    shutil.rmtree(raw, ignore_errors=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChromaServer:
    """A real ``chroma run`` server on 127.0.0.1, for tests; use as a context manager.

    Args:
        path: the server's data folder.
        port: the port (default: a free one). Stopping and starting again keeps the port and
            the data, as a server restart would.
    """

    def __init__(
        self, path: str, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        self.path = path
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.startup_timeout = startup_timeout
        self._process: Any = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ChromaServer:
        import os
        import shutil
        import subprocess
        import sys
        import time
        import urllib.request

        exe = shutil.which("chroma") or os.path.join(os.path.dirname(sys.executable), "chroma")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self._process = subprocess.Popen(
            [exe, "run", "--path", self.path, "--host", self.host, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.port}/api/v2/heartbeat"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chroma run exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"chroma run did not answer on {self.address} within {self.startup_timeout} s"
        )

    def stop(self) -> None:
        import subprocess

        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(
            host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False)
        )

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
