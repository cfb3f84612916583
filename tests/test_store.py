"""ChromaStore against real Chroma, embedded and as a server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stella_rag import ChromaStore, EncoderMismatchError, SentenceEncoder, text_id
from stella_rag.testing import ChromaServer, FakeEncoder

DOCS = [
    "the phone battery lasts a day",
    "the phone price is high",
    "basketball because of an injury",
    "table tennis on monday",
]


class CountingEncoder:
    """Wraps an encoder and counts the texts it embeds."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.embedded = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.encode_documents(texts)


@pytest.fixture(params=["embedded", "server"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "embedded":
        from stella_rag import connect

        yield connect(tmp_path / "db")
    else:
        server: ChromaServer = request.getfixturevalue("chroma_server")
        yield server.client()


def _name(request: pytest.FixtureRequest) -> str:
    return "c-" + "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:50].strip("-")


def test_add_search_get_delete(
    client: Any, tiny: SentenceEncoder, request: pytest.FixtureRequest
) -> None:
    store = ChromaStore(_name(request), encoder=tiny, client=client)
    ids = store.add(DOCS, metadatas=[{"n": i} for i in range(4)])
    assert ids == [text_id(d) for d in DOCS]
    assert store.count() == 4
    hits = store.search(DOCS[2], k=2)
    assert len(hits) == 2
    assert hits[0].text == DOCS[2]
    assert hits[0].metadata == {"n": 2}
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert hits[0].score >= hits[1].score
    assert [h.text for h in store.get([ids[3], "missing", ids[0]])] == [DOCS[3], DOCS[0]]
    assert [h.text for h in store.search(DOCS[0], k=4, where={"n": 1})] == [DOCS[1]]
    assert store.search(DOCS[0], k=4, where={"nope": 1}) == []
    assert len(store.search(DOCS[0], k=100)) == 4
    store.delete([ids[0]])
    assert store.count() == 3
    assert store.search(store.encoder.encode_queries(["x"])[0], k=1)[0].id in ids[1:]


def test_metadata_records_the_encoder(tiny: SentenceEncoder, tmp_path: Path) -> None:
    store = ChromaStore("records", encoder=tiny, path=tmp_path)
    meta = store.collection.metadata
    assert meta["stella_rag:model_id"] == tiny.model_id
    assert meta["stella_rag:dim"] == 48
    assert meta["stella_rag:normalize"] is True
    assert store.space == "cosine"


def test_reopen_with_another_encoder_fails(
    client: Any, tiny: SentenceEncoder, tiny_model_40d: str, request: pytest.FixtureRequest
) -> None:
    name = _name(request)
    ChromaStore(name, encoder=tiny, client=client).add(DOCS)
    for other in (
        SentenceEncoder(tiny_model_40d, device="cpu"),
        SentenceEncoder(tiny.model_id, device="cpu", truncate_dim=16),
        SentenceEncoder(tiny.model_id, device="cpu", normalize=False),
    ):
        with pytest.raises(EncoderMismatchError) as info:
            ChromaStore(name, encoder=other, client=client)
        assert tiny.model_id in str(info.value)
    # The same encoder reopens it fine, in a fresh object.
    assert (
        ChromaStore(
            name, encoder=SentenceEncoder(tiny.model_id, device="cpu"), client=client
        ).count()
        == 4
    )


def test_persistent_reopen(tiny: SentenceEncoder, tmp_path: Path) -> None:
    ChromaStore("persist", encoder=tiny, path=tmp_path).add(DOCS)
    reopened = ChromaStore("persist", encoder=tiny, path=tmp_path)
    assert reopened.count() == 4


def test_second_add_of_1000_texts_embeds_nothing(tmp_path: Path) -> None:
    encoder = CountingEncoder(FakeEncoder(dim=8))
    store = ChromaStore("idempotent", encoder=encoder, path=tmp_path)
    texts = [f"passage number {i}" for i in range(1000)]
    report = store.index(texts)
    assert (report.embedded, report.skipped) == (1000, 0)
    assert encoder.embedded == 1000
    report = store.index(iter(texts))  # any iterable
    assert (report.embedded, report.skipped) == (0, 1000)
    assert encoder.embedded == 1000
    assert store.count() == 1000


def test_same_text_twice_in_one_call(tmp_path: Path) -> None:
    encoder = CountingEncoder(FakeEncoder(dim=8))
    store = ChromaStore("dupes", encoder=encoder, path=tmp_path)
    ids = store.add(["same", "same", "other"])
    assert ids[0] == ids[1]
    assert store.count() == 2
    assert encoder.embedded == 2


def test_given_ids_update_changed_text_and_metadata(tmp_path: Path) -> None:
    encoder = CountingEncoder(FakeEncoder(dim=8))
    store = ChromaStore("updates", encoder=encoder, path=tmp_path)
    store.add(["v1"], ids=["doc"], metadatas=[{"rev": 1}])
    report = store.index(["v1"], ids=["doc"], metadatas=[{"rev": 2}])
    assert (report.embedded, report.updated) == (0, 1)
    assert store.get(["doc"])[0].metadata == {"rev": 2}
    report = store.index(["v2"], ids=["doc"])
    assert report.embedded == 1
    assert store.get(["doc"])[0].text == "v2"
    assert store.count() == 1


def test_streams_in_chunks_from_a_generator(tmp_path: Path) -> None:
    encoder = FakeEncoder(dim=4)
    store = ChromaStore("stream", encoder=encoder, path=tmp_path)
    seen = []
    store.index((f"t{i}" for i in range(1300)), on_chunk=lambda r: seen.append(r.embedded))
    assert store.count() == 1300
    assert seen == [512, 1024, 1300]
    assert encoder.calls == 3  # one embedding call per chunk, never the whole corpus at once


def test_in_memory_by_default() -> None:
    store = ChromaStore("memory", encoder=FakeEncoder(dim=4))
    store.add(["a text"])
    assert store.count() == 1


def test_bad_lengths_write_nothing(tmp_path: Path) -> None:
    store = ChromaStore("lengths", encoder=FakeEncoder(dim=4), path=tmp_path)
    with pytest.raises(ValueError, match="got 2 texts but 1 metadatas"):
        store.add(["a", "b"], metadatas=[{"x": 1}])
    with pytest.raises(TypeError, match="text at position 1 is None"):
        store.add(["a", None])  # type: ignore[list-item]
    assert store.count() == 0


def test_many_queries_at_once(tiny: SentenceEncoder, tmp_path: Path) -> None:
    store = ChromaStore("many", encoder=tiny, path=tmp_path)
    store.add(DOCS)
    results = store.search_many(tiny.encode_queries(DOCS), k=1)
    assert [r[0].text for r in results] == DOCS
    assert list(itertools.chain.from_iterable(store.search_many(np.empty((0, 48)), k=1))) == []


def test_from_collection_object(
    client: Any, tiny: SentenceEncoder, request: pytest.FixtureRequest
) -> None:
    name = _name(request)
    ChromaStore(name, encoder=tiny, client=client).add(DOCS)
    raw = client.get_collection(name)
    store = ChromaStore.from_collection(raw, encoder=tiny)
    assert store.count() == 4
    assert store.search(DOCS[1], k=1)[0].text == DOCS[1]
    with pytest.raises(EncoderMismatchError):
        ChromaStore.from_collection(raw, encoder=FakeEncoder(dim=48))


# ------------------------------------------------------------------ open / record_encoder
def test_open_rebuilds_the_recorded_encoder(tiny_model: str, tmp_path: Path) -> None:
    from stella_rag import CollectionNotFoundError

    written = ChromaStore(
        "recorded",
        encoder=SentenceEncoder(tiny_model, device="cpu", truncate_dim=32),
        path=tmp_path,
    )
    written.add(DOCS)
    store = ChromaStore.open("recorded", path=tmp_path, device="cpu")
    assert store.encoder.model_id == written.encoder.model_id
    assert store.encoder.truncate_dim == 32 and store.dim == 32
    assert store.search(DOCS[2], k=1)[0].text == DOCS[2]
    with pytest.raises(EncoderMismatchError, match="truncate_dim=32"):
        ChromaStore.open("recorded", path=tmp_path, encoder=tiny_model, device="cpu")
    with pytest.raises(CollectionNotFoundError, match=r"no collection 'nope'.*'recorded'") as info:
        ChromaStore.open("nope", path=tmp_path)
    assert info.value.available == ["recorded"] and info.value.name == "nope"
    created = ChromaStore.open("new", path=tmp_path, encoder=FakeEncoder(48), create=True)
    assert created.count() == 0
    with pytest.raises(TypeError, match="need a model name"):
        ChromaStore.open("new", path=tmp_path, encoder=FakeEncoder(48), device="cpu")


def test_open_reads_the_chroma_embedding_function_config(tiny_model: str, tmp_path: Path) -> None:
    """A collection made through StellaEmbeddingFunction records its arguments, not metadata."""
    from stella_rag import connect
    from stella_rag.chroma import StellaEmbeddingFunction

    client = connect(tmp_path)
    ef = StellaEmbeddingFunction(tiny_model, device="cpu", normalize=False)
    raw: Any = client.create_collection("by-ef", embedding_function=ef)  # type: ignore[arg-type]
    raw.add(ids=["a", "b"], documents=DOCS[:2])
    store = ChromaStore.open("by-ef", client=client, device="cpu")
    assert store.encoder.model_id == ef.encoder.model_id
    assert store.encoder.normalize is False


def test_record_encoder_of_a_foreign_collection(tiny: SentenceEncoder, tmp_path: Path) -> None:
    import warnings

    from stella_rag import StellaRagWarning, connect

    client = connect(tmp_path)
    foreign = client.create_collection("foreign", metadata={"owner": "me"})
    foreign.add(ids=["x", "y"], embeddings=tiny.encode_documents(DOCS[:2]), documents=DOCS[:2])
    store = ChromaStore("foreign", encoder=tiny, client=client)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.record_encoder()
        store.record_encoder()  # a second call does nothing
        assert store.search(DOCS[0], k=1)[0].id == "x"
    meta = client.get_collection("foreign").metadata
    assert meta["stella_rag:model_id"] == tiny.model_id and meta["owner"] == "me"
    assert ChromaStore.open("foreign", client=client).encoder.model_id == tiny.model_id
    with pytest.warns(StellaRagWarning):  # ... while a collection recording nothing warns once
        other = client.create_collection("other")
        other.add(ids=["x"], embeddings=tiny.encode_documents(DOCS[:1]), documents=DOCS[:1])
        ChromaStore("other", encoder=tiny, client=client).search(DOCS[0], k=1)


# ------------------------------------------------------------------------- the fault table
@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError("refused"), "unreachable"),
        (Exception("Could not connect to a Chroma server"), "unreachable"),
        (type("ReadTimeout", (Exception,), {})("slow"), "unreachable"),
        (type("NotFoundError", (Exception,), {})("Collection x does not exist"), "not_found"),
        (Exception("attempt to write a readonly database"), "storage"),
        (OSError(28, "No space left on device"), "storage"),
        (Exception("disk I/O error"), "storage"),
        (PermissionError("Permission denied"), "storage"),
        (type("InternalError", (Exception,), {})("boom"), "storage"),
        (ValueError("a plain mistake"), None),
    ],
)
def test_one_table_maps_foreign_faults(exc: BaseException, kind: str | None) -> None:
    from stella_rag import StoreError, _client

    fault = _client.classify(exc)
    assert (fault.kind if fault else None) == kind
    assert _client.classify(StoreError("ours")) is None


def test_chromadb_errors_are_classified_by_the_table() -> None:
    from chromadb.errors import InvalidArgumentError, NotFoundError

    from stella_rag import _client

    assert _client.classify(NotFoundError("Collection [x] does not exist")).kind == "not_found"
    assert _client.classify(InvalidArgumentError("bad")).kind == "chroma"


def test_storage_fault_becomes_store_error_and_retry_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stella_rag import StoreError, StoreUnavailableError, _client

    def full() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(StoreError, match="ran out of disk space") as info:
        _client.call(full, collection="c")
    assert info.value.report is None
    monkeypatch.setattr(_client, "_RETRY_DELAYS_S", (0.0, 0.0))
    calls = []

    def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError("refused")

    with pytest.raises(StoreUnavailableError, match="stopped answering"):
        _client.call(down, collection="c")
    assert len(calls) == 3
