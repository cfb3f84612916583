"""ChromaStore: a Chroma collection that knows which encoder wrote it.

Connecting to Chroma, retrying and the meaning of chromadb's faults live in ``_client.py``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import _client
from ._client import connect
from ._errors import (
    CollectionNotFoundError,
    EncoderMismatchError,
    StellaRagWarning,
    StoreError,
    StoreUnavailableError,
)
from ._hits import Hit, Hits
from ._validate import check_k, check_metadata, check_text, check_vector, check_vector_rows

if TYPE_CHECKING:
    from ._encoder import Encoder

__all__ = ["AddReport", "ChromaStore", "StellaRagWarning", "connect", "text_id"]

T = TypeVar("T")

META_MODEL = "stella_rag:model_id"
META_DIM = "stella_rag:dim"
META_NORMALIZE = "stella_rag:normalize"
META_TRUNCATE = "stella_rag:truncate_dim"

_CHUNK = 512
_warned: set[str] = set()
"""Collections (by id) already warned about in this process."""


def text_id(text: str) -> str:
    """The default id of a passage: a hash of its text, so the same text is stored once."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class AddReport:
    """What :meth:`ChromaStore.index` did."""

    ids: list[str] = field(default_factory=list)
    embedded: int = 0
    skipped: int = 0
    updated: int = 0
    seconds: float = 0.0


def recorded_encoder(collection: Any) -> dict[str, Any]:
    """The encoder settings a chromadb collection records, ``{}`` when it records none.

    Keys ``model``, ``truncate_dim``, ``normalize``: from a :class:`ChromaStore`'s metadata, or
    from the configuration Chroma stores for a :class:`~stella_rag.chroma.StellaEmbeddingFunction`
    (the arguments it was given, as ``get_config`` returns them).
    """
    meta = dict(collection.metadata or {})
    if META_MODEL in meta:
        return {
            "model": meta[META_MODEL],
            "truncate_dim": meta.get(META_TRUNCATE) or None,
            "normalize": bool(meta.get(META_NORMALIZE, True)),
        }
    try:
        ef = (collection.configuration_json or {}).get("embedding_function") or {}
    except Exception:  # an older server, or a configuration we cannot read: nothing recorded
        return {}
    if ef.get("name") == "stella_rag" and isinstance(ef.get("config"), dict):
        config = ef["config"]
        return {
            "model": config.get("model"),
            "truncate_dim": config.get("truncate_dim"),
            "normalize": bool(config.get("normalize", True)),
        }
    return {}


@dataclass(frozen=True)
class CollectionInfo:
    """A collection of a Chroma database, as ``stella-rag info`` lists it."""

    name: str
    count: int
    model: str | None
    dim: int | None


def list_collections(client: Any) -> list[CollectionInfo]:
    """The collections of a client, sorted by name, with the encoder each records."""
    out = []
    for collection in _client.call(client.list_collections, client=client):
        dim = (collection.metadata or {}).get(META_DIM)
        out.append(
            CollectionInfo(
                name=collection.name,
                count=int(collection.count()),
                model=recorded_encoder(collection).get("model"),
                dim=int(dim) if dim is not None else None,
            )
        )
    return sorted(out, key=lambda c: c.name)


class ChromaStore:
    """A Chroma collection whose vectors come from one encoder, checked on open.

    Args:
        collection: the collection's name.
        encoder: the encoder of the documents (:class:`SentenceEncoder` or a model name).
        path: folder of an embedded Chroma database (``PersistentClient``).
        client: any ``chromadb`` client (for example ``chromadb.HttpClient``). With neither
            ``path`` nor ``client`` the collection lives in memory.
        show_progress: progress bar while adding; default: only when stderr is a terminal.

    To open a collection with the encoder it records, without naming it, use :meth:`open`.
    A collection that holds vectors but was not created by stella-rag (LangChain, LlamaIndex,
    plain chromadb) is checked by dimension only; :meth:`record_encoder` records the encoder.

    Raises:
        EncoderMismatchError: the collection was written by another encoder.
    """

    def __init__(
        self,
        collection: str,
        *,
        encoder: Any,
        path: str | os.PathLike[str] | None = None,
        client: Any = None,
        show_progress: bool | None = None,
    ) -> None:
        if client is not None and path is not None:
            raise ValueError("pass either path= or client=, not both")
        self._setup(collection, encoder, show_progress)
        self.client: Any = client if client is not None else connect(path)
        self.collection = self._open(
            self._call(lambda: _client.get_collection(self.client, self.name))
        )

    def _setup(self, name: str, encoder: Any, show_progress: bool | None) -> None:
        from ._encoder import resolve_encoder

        if not isinstance(name, str) or not name:
            raise TypeError(f"collection must be a non-empty name, got {name!r}")
        self.encoder: Encoder = resolve_encoder(encoder)
        self.name = name
        self.show_progress = show_progress
        self._space = "cosine"
        self._unrecorded_dim: int | None = None
        # How to record the encoder, in the words of the caller's setting (the CLI has its own).
        self.record_hint = "call record_encoder() once to record it"

    @classmethod
    def open(
        cls,
        collection: str,
        *,
        path: str | os.PathLike[str] | None = None,
        client: Any = None,
        encoder: Any = None,
        create: bool = False,
        show_progress: bool | None = None,
        encoder_factory: Callable[..., Any] | None = None,
        **encoder_kwargs: Any,
    ) -> ChromaStore:
        """Open a collection with the encoder that wrote it, rebuilt from what it records.

        Args:
            collection, path, client, show_progress: as for the constructor.
            encoder: use this encoder (or model name) instead; it is checked against the record.
                Default: the recorded model, ``truncate_dim`` and ``normalize``; for a
                collection that records none, ``"stella-large-zh"``.
            create: create the collection when there is none of that name.
            encoder_factory: what builds the encoder from a model name and options (default
                :class:`SentenceEncoder`; :class:`stella_rag.daemon.DaemonEncoder` takes the
                same arguments).
            **encoder_kwargs: for the rebuilt or named encoder (``device``, ``precision``...).

        Raises:
            CollectionNotFoundError: there is no such collection and ``create`` is false.
            EncoderMismatchError: ``encoder`` is not the one the collection records.
        """
        from ._encoder import DEFAULT_MODEL, SentenceEncoder

        if client is not None and path is not None:
            raise ValueError("pass either path= or client=, not both")
        if client is None:
            client = connect(path)
        found = _client.call(
            lambda: _client.get_collection(client, collection), collection=collection, client=client
        )
        if found is None and not create:
            names = [c.name for c in _client.call(client.list_collections, collection=collection)]
            where = f" at {os.fspath(path)!r}" if path is not None else _client.address_of(client)
            raise CollectionNotFoundError(collection, sorted(names), where)
        if encoder is None or isinstance(encoder, (str, os.PathLike)):
            recorded = recorded_encoder(found) if found is not None else {}
            if encoder is None and recorded.get("model"):
                encoder = recorded["model"]
                encoder_kwargs = {
                    "truncate_dim": recorded["truncate_dim"],
                    "normalize": recorded["normalize"],
                    **encoder_kwargs,
                }
            factory = SentenceEncoder if encoder_factory is None else encoder_factory
            encoder = factory(encoder or DEFAULT_MODEL, **encoder_kwargs)
        elif encoder_kwargs:
            raise TypeError(
                f"encoder options {sorted(encoder_kwargs)} need a model name, not an encoder"
            )
        return cls(collection, encoder=encoder, client=client, show_progress=show_progress)

    @classmethod
    def from_collection(
        cls,
        collection: Any,
        *,
        encoder: Any,
        show_progress: bool | None = None,
    ) -> ChromaStore:
        """Wrap a chromadb ``Collection`` object, such as the one ``langchain_chroma.Chroma`` or
        LlamaIndex's ``ChromaVectorStore`` holds, with the same checks as the constructor.

        The store works through that object alone: its ``client`` is ``None``.
        """
        store = cls.__new__(cls)
        store._setup(collection.name, encoder, show_progress)
        store.client = None
        store.collection = store._open(collection)
        return store

    # ------------------------------------------------------------------ opening
    def _expected(self) -> dict[str, Any]:
        return {
            META_MODEL: str(self.encoder.model_id),
            META_DIM: int(self.encoder.dim),
            META_NORMALIZE: bool(getattr(self.encoder, "normalize", True)),
            META_TRUNCATE: int(getattr(self.encoder, "truncate_dim", None) or 0),
        }

    def _open(self, existing: Any) -> Any:
        if existing is None:
            return self._call(
                lambda: self.client.get_or_create_collection(
                    self.name,
                    metadata={"hnsw:space": "cosine", **self._expected()},
                    embedding_function=None,
                )
            )
        self._space = _space_of(existing)
        meta = dict(existing.metadata or {})
        expected = self._expected()
        if META_MODEL in meta:
            found = {k: meta.get(k) for k in expected}
            if found != expected:
                raise EncoderMismatchError(
                    f"collection {self.name!r} was written by {_describe(found)} but is opened "
                    f"with {_describe(expected)}; use the same encoder, or another collection"
                )
            return existing
        stored_dim = self._call(lambda: _stored_dim(existing))
        if stored_dim is not None and stored_dim != expected[META_DIM]:
            raise EncoderMismatchError(
                f"collection {self.name!r} holds {stored_dim}-d vectors but "
                f"{expected[META_MODEL]!r} makes {expected[META_DIM]}-d vectors"
            )
        if stored_dim is None:  # empty: nothing in it can disagree, so record ours now
            self._record(existing)
        else:
            self._unrecorded_dim = stored_dim
        return existing

    def _record(self, collection: Any) -> None:
        kept = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
        self._call(lambda: collection.modify(metadata={**kept, **self._expected()}))

    @property
    def needs_record(self) -> bool:
        """Whether the collection holds vectors but does not record the encoder that wrote them
        (see :meth:`record_encoder`)."""
        return self._unrecorded_dim is not None

    def record_encoder(self) -> None:
        """Record this store's encoder in a collection that does not say which encoder wrote it.

        For a collection made by LangChain, LlamaIndex or plain chromadb whose vectors this
        encoder wrote: from then on every open checks the encoder, as for stella-rag's own
        collections. Recording a wrong encoder makes its searches meaningless, so only call it
        when you know. Does nothing when the encoder is recorded already.
        """
        if self._unrecorded_dim is None:
            return
        self._record(self.collection)
        self._unrecorded_dim = None

    def _warn_unrecorded(self) -> None:
        """Once per collection and process: its vectors match this encoder in size only."""
        key = str(getattr(self.collection, "id", "") or self.name)
        if self._unrecorded_dim is None or key in _warned:
            return
        _warned.add(key)
        warnings.warn(
            f"collection {self.name!r} was not created by stella-rag, so it does not record "
            f"which encoder wrote it; its {self._unrecorded_dim}-d vectors match "
            f"{self.encoder.model_id!r} in size only. If that model wrote them, "
            f"{self.record_hint}.",
            StellaRagWarning,
            stacklevel=3,
        )

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def space(self) -> str:
        """The collection's distance (``cosine``, ``l2`` or ``ip``); scores are cosine anyway."""
        return self._space

    def __repr__(self) -> str:
        return f"ChromaStore({self.name!r}, encoder={self.encoder.model_id!r})"

    # ----------------------------------------------------------------- writing
    def add(
        self,
        texts: Iterable[str],
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
        ids: Iterable[str] | None = None,
    ) -> list[str]:
        """Add passages; returns their ids in input order.

        Ids default to :func:`text_id` (a hash of the text): a text that is already stored is
        neither embedded nor written again. A given id that exists with another text is
        re-embedded and overwritten; with new metadata only, the metadata is updated.
        Works from any iterable, in chunks, without holding the corpus in memory.
        """
        return self.index(texts, metadatas, ids).ids

    def index(
        self,
        texts: Iterable[str],
        metadatas: Iterable[Mapping[str, Any] | None] | None = None,
        ids: Iterable[str] | None = None,
        *,
        on_chunk: Callable[[AddReport], None] | None = None,
        on_passages: Callable[[int], None] | None = None,
    ) -> AddReport:
        """Like :meth:`add`, and reports how many passages were embedded, skipped, updated.

        Args:
            on_chunk: called after each chunk (up to 512 passages) is written.
            on_passages: called with how many of the passages are done so far (stored,
                skipped, or embedded and about to be written), after every forward pass of the
                model: on a CPU a chunk takes many seconds, and a bar that moves once per chunk
                looks stuck.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of strings, not a single string")
        if texts is None or not isinstance(texts, Iterable) or isinstance(texts, Mapping):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        for name, other in (("metadatas", metadatas), ("ids", ids)):
            if other is not None and (
                isinstance(other, (str, bytes, Mapping)) or not isinstance(other, Iterable)
            ):
                raise TypeError(f"{name} must be a list, got {type(other).__name__}")
        self._warn_unrecorded()
        report = AddReport()
        started = time.perf_counter()
        sized = all(isinstance(x, Sequence) for x in (texts, metadatas or [], ids or []))
        if sized:  # validate everything before the first write
            self._check_lengths(texts, metadatas, ids)  # type: ignore[arg-type]
            for i, text in enumerate(texts):
                check_text(text, f"text at position {i}")
            for i, meta in enumerate(metadatas or []):
                check_metadata(meta, f"metadata at position {i}")
            for i, pid in enumerate(ids or []):
                _check_id(pid, i)
        total = len(texts) if isinstance(texts, Sequence) else None
        bar = self._progress(total)
        try:
            rows = _rows(texts, metadatas, ids)
            size = min(_CHUNK, self._max_batch())
            done = 0
            moved = [0]

            def move_to(n: int) -> None:
                if n > moved[0]:
                    if bar is not None:
                        bar.update(n - moved[0])
                    moved[0] = n
                    if on_passages is not None:
                        on_passages(n)

            for chunk in _chunks(rows, size):
                try:
                    self._write_chunk(chunk, report, functools.partial(_offset, move_to, done))
                except (StoreError, TypeError, ValueError) as exc:
                    error = _partial(exc, done, report)
                    if error is exc:
                        raise
                    raise error from exc
                done += len(chunk)
                move_to(done)
                if on_chunk is not None:
                    on_chunk(report)
        finally:
            if bar is not None:
                bar.close()
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _check_lengths(texts: Sequence[Any], metadatas: Any, ids: Any) -> None:
        for name, other in (("metadatas", metadatas), ("ids", ids)):
            if other is not None and len(other) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(other)} {name}")

    def _progress(self, total: int | None) -> Any:
        show = self.show_progress
        if show is None:
            show = sys.stderr.isatty() and (total is None or total >= 256)
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="passage", desc=f"indexing {self.name}")

    def _max_batch(self) -> int:
        if self.client is None:  # a wrapped collection object: the default chunk then
            return _CHUNK
        try:
            return int(self.client.get_max_batch_size())
        except Exception:
            return _CHUNK

    def _write_chunk(
        self,
        chunk: list[tuple[int, Any, Any, Any]],
        report: AddReport,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        items: dict[str, tuple[str, dict[str, Any] | None]] = {}
        order: list[str] = []
        for position, text, meta, given_id in chunk:
            text = check_text(text, f"text at position {position}")
            meta = check_metadata(meta, f"metadata at position {position}")
            pid = text_id(text) if given_id is None else _check_id(given_id, position)
            order.append(pid)
            items.setdefault(pid, (text, meta))
        found = self._call(
            lambda: self.collection.get(ids=list(items), include=["documents", "metadatas"])
        )
        stored = {
            pid: (doc, meta)
            for pid, doc, meta in zip(
                found["ids"], found["documents"] or [], found["metadatas"] or [], strict=False
            )
        }
        to_embed = [pid for pid in items if pid not in stored or stored[pid][0] != items[pid][0]]
        meta_only = [
            pid
            for pid in items
            if pid in stored
            and stored[pid][0] == items[pid][0]
            and items[pid][1] is not None
            and (stored[pid][1] or None) != items[pid][1]
        ]
        skipped = len(chunk) - len(to_embed) - len(meta_only)
        if meta_only:
            self._call(
                lambda: self.collection.update(
                    ids=meta_only, metadatas=[items[p][1] for p in meta_only]
                )
            )
            report.updated += len(meta_only)
        if not to_embed:
            report.skipped += skipped
            report.ids.extend(order)
            return
        texts = [items[p][0] for p in to_embed]
        if progress is not None and _reports_progress(self.encoder):
            known = len(chunk) - len(to_embed)  # stored already: done before any forward pass
            encoded = [0]

            def step(n: int) -> None:
                encoded[0] += n
                progress(known + encoded[0])

            encoder: Any = self.encoder  # a SentenceEncoder: it reports each forward pass
            vectors = encoder.encode_documents(texts, on_progress=step)
        else:
            vectors = self.encoder.encode_documents(texts)
        metas = [items[p][1] for p in to_embed]
        self._call(
            lambda: self.collection.upsert(
                ids=to_embed,
                embeddings=vectors,
                documents=[items[p][0] for p in to_embed],
                metadatas=metas if any(m is not None for m in metas) else None,
            )
        )
        report.embedded += len(to_embed)
        report.skipped += skipped
        report.ids.extend(order)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete passages by id (unknown ids are ignored)."""
        checked = _check_ids(ids)
        if checked:
            self._call(lambda: self.collection.delete(ids=checked))

    # ----------------------------------------------------------------- reading
    def count(self) -> int:
        return int(self._call(self.collection.count))

    def get(self, ids: Sequence[str]) -> Hits:
        """The stored passages with these ids, in the order asked (missing ids are left out)."""
        checked = _check_ids(ids)
        self._warn_unrecorded()
        if not checked:
            return Hits()
        found = self._call(
            lambda: self.collection.get(ids=checked, include=["documents", "metadatas"])
        )
        by_id = {
            pid: Hit(pid, doc or "", None, dict(meta or {}))
            for pid, doc, meta in zip(
                found["ids"], found["documents"] or [], found["metadatas"] or [], strict=False
            )
        }
        return Hits(by_id[p] for p in dict.fromkeys(checked) if p in by_id)

    def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 4,
        where: Mapping[str, Any] | None = None,
        *,
        where_document: Mapping[str, Any] | None = None,
    ) -> Hits:
        """The ``k`` passages nearest to a query text or vector, best first.

        ``k`` larger than the collection returns everything; a ``where`` filter on a key no
        passage has returns ``[]``. Scores are cosine similarities.

        Raises:
            TypeError, ValueError: an empty query text, ``k`` below 1, a ``where`` that is not a
                dict, or a vector of another dimension, with NaN, infinite or only zero values.
        """
        k = check_k(k)
        if isinstance(query, str):
            check_text(query, "the query")
            vector = self.encoder.encode_queries([query])[0]
        elif query is None or isinstance(query, (bytes, bytearray, Mapping)):
            raise TypeError(
                f"the query must be a string or a vector of numbers, got {type(query).__name__}"
            )
        else:
            vector = check_vector(query, self.dim)
        return self.search_many(np.asarray([vector]), k, where, where_document=where_document)[0]

    def search_many(
        self,
        vectors: np.ndarray,
        k: int = 4,
        where: Mapping[str, Any] | None = None,
        *,
        where_document: Mapping[str, Any] | None = None,
    ) -> list[Hits]:
        """:meth:`search` for many query vectors in one call."""
        k = check_k(k)
        self._warn_unrecorded()
        for name, value in (("where", where), ("where_document", where_document)):
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(
                    f"{name} must be a dict such as {{'source': 'a.txt'}}, got {value!r:.60}"
                )
        matrix = check_vector_rows(vectors)
        rows = [check_vector(v, self.dim, f"query vector {i}") for i, v in enumerate(matrix)]
        if not rows:
            return []
        # Chroma returns fewer than n_results when the collection holds fewer (none when empty),
        # so no count() round trip is needed first.
        result = self._call(
            lambda: self.collection.query(
                query_embeddings=np.stack(rows),
                n_results=k,
                where=dict(where) if where else None,
                where_document=dict(where_document) if where_document else None,
                include=["documents", "metadatas", "distances"],
            )
        )
        out: list[Hits] = []
        for i in range(len(rows)):
            metas = (result.get("metadatas") or [[]])[i] or []
            docs = (result.get("documents") or [[]])[i] or []
            out.append(
                Hits(
                    Hit(pid, doc or "", _score(dist, self._space), dict(meta or {}))
                    for pid, doc, meta, dist in itertools.zip_longest(
                        result["ids"][i], docs, metas, result["distances"][i]
                    )
                )
            )
        return out

    # ----------------------------------------------------------------- faults
    def _call(self, fn: Callable[[], T]) -> T:
        """Run a Chroma call: retried while the server is unreachable, faults mapped to ours."""
        return _client.call(fn, collection=self.name, client=self.client)


def _offset(move_to: Callable[[int], None], base: int, n: int) -> None:
    move_to(base + n)


def _reports_progress(encoder: Any) -> bool:
    from ._encoder import SentenceEncoder

    return isinstance(encoder, SentenceEncoder)


def _describe(meta: Mapping[str, Any]) -> str:
    trunc = meta.get(META_TRUNCATE)
    return (
        f"{meta.get(META_MODEL)!r} ({meta.get(META_DIM)}-d"
        + (f", truncate_dim={trunc}" if trunc else "")
        + (", normalized" if meta.get(META_NORMALIZE) else ", not normalized")
        + ")"
    )


def _space_of(collection: Any) -> str:
    config = getattr(collection, "configuration", None) or {}
    for key in ("hnsw", "spann"):
        section = config.get(key) if isinstance(config, Mapping) else None
        if isinstance(section, Mapping) and section.get("space"):
            return str(section["space"])
    return str((collection.metadata or {}).get("hnsw:space", "l2"))


def _stored_dim(collection: Any) -> int | None:
    peek = collection.get(limit=1, include=["embeddings"])
    embeddings = peek.get("embeddings")
    if embeddings is None or len(embeddings) == 0:
        return None
    return len(embeddings[0])


def _score(distance: float | None, space: str) -> float | None:
    if distance is None:
        return None
    if space == "l2":  # squared L2 of unit vectors: 2 - 2 cos
        return 1.0 - float(distance) / 2.0
    return 1.0 - float(distance)


def _check_id(pid: Any, position: int) -> str:
    if not isinstance(pid, str) or not pid:
        raise TypeError(f"id at position {position} must be a non-empty string, got {pid!r:.60}")
    return pid


def _partial(exc: Exception, done: int, report: AddReport) -> Exception:
    """``exc`` again, saying which passages were stored before it happened."""
    if isinstance(exc, (TypeError, ValueError)):
        if done == 0:
            return exc  # found before anything was written: the caller's error, unchanged
        error: Exception = (TypeError if isinstance(exc, TypeError) else ValueError)(
            f"{exc}; the {done} passages before position {done} were stored, none after"
        )
    else:
        stored = (
            f"the {done} passages before position {done} are stored ({report.embedded} "
            f"embedded, {report.skipped} already there, {report.updated} updated)"
            if done
            else "no chunk was completely stored"
        )
        kind = StoreUnavailableError if isinstance(exc, StoreUnavailableError) else StoreError
        return kind(
            f"{exc}; {stored}, and the chunk that failed may be partly stored. Re-running the "
            "same call completes it without duplicates.",
            report=report,
        )
    return error


def _check_ids(ids: Any) -> list[str]:
    if isinstance(ids, str):
        raise TypeError("ids must be a list of strings, not a single string")
    out = list(ids)
    for i, pid in enumerate(out):
        if not isinstance(pid, str) or not pid:
            raise TypeError(f"id at position {i} must be a non-empty string, got {pid!r}")
    return out


def _rows(texts: Iterable[Any], metadatas: Any, ids: Any) -> Iterator[tuple[int, Any, Any, Any]]:
    meta_iter = iter(metadatas) if metadatas is not None else itertools.repeat(None)
    id_iter = iter(ids) if ids is not None else itertools.repeat(None)
    sentinel = object()
    for position, text in enumerate(texts):
        meta = next(meta_iter, sentinel)
        given = next(id_iter, sentinel)
        if meta is sentinel or given is sentinel:
            raise ValueError(f"metadatas or ids ran out at position {position}, before texts")
        yield position, text, meta, given


def _chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
