"""ChromaStore: a Chroma collection that knows which encoder wrote it."""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ._errors import EncoderMismatchError, StoreError, StoreUnavailableError
from ._hits import Hit, Hits
from ._validate import check_k, check_metadata, check_text, check_vector

__all__ = ["AddReport", "ChromaStore", "StellaRagWarning", "connect", "text_id"]

T = TypeVar("T")

META_MODEL = "stella_rag:model_id"
META_DIM = "stella_rag:dim"
META_NORMALIZE = "stella_rag:normalize"
META_TRUNCATE = "stella_rag:truncate_dim"

_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
_CHUNK = 512
_warned: set[tuple[int, str]] = set()


class StellaRagWarning(UserWarning):
    """Something works, but not the way you probably meant."""


def text_id(text: str) -> str:
    """The default id of a passage: a hash of its text, so the same text is stored once."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    server: str | None = None,
    headers: Mapping[str, str] | None = None,
    ssl: bool = False,
) -> Any:
    """A Chroma client: a server at ``"host:port"``, embedded at ``path``, or in memory.

    Args:
        path: folder of an embedded (``PersistentClient``) database.
        server: ``"host:port"`` of a Chroma server (``chroma run``).
        headers: extra HTTP headers for the server, for example
            ``{"Authorization": "Bearer <token>"}`` or ``{"X-Chroma-Token": "<token>"}``.
        ssl: connect to the server over HTTPS.
    """
    try:
        import chromadb
    except ImportError as exc:  # pragma: no cover - chromadb is a requirement
        raise ImportError("ChromaStore needs chromadb: pip install 'stella-rag'") from exc
    if server is not None:
        host, _, port_text = server.rpartition(":")
        if not host or not port_text.isdigit():
            raise ValueError(f"server must be 'host:port', got {server!r}")
        try:
            return chromadb.HttpClient(
                host=host, port=int(port_text), ssl=ssl, headers=dict(headers or {}),
                settings=_settings(),
            )
        except Exception as exc:
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {host}:{port_text} ({type(exc).__name__}); "
                "is `chroma run` running there?"
            ) from None
    if path is None:
        return chromadb.EphemeralClient(settings=_settings())
    folder = os.fspath(path)
    try:
        os.makedirs(folder, exist_ok=True)
        return chromadb.PersistentClient(path=folder, settings=_settings())
    except Exception as exc:
        raise StoreError(f"cannot open a Chroma database at {folder!r}: {exc}") from exc


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"ConnectError", "ConnectTimeout", "ReadError", "RemoteProtocolError",
                "ConnectionError", "ReadTimeout", "WriteError", "PoolTimeout"}:
        return True
    return "Could not connect" in str(exc)


@dataclass
class AddReport:
    """What :meth:`ChromaStore.index` did."""

    ids: list[str] = field(default_factory=list)
    embedded: int = 0
    skipped: int = 0
    updated: int = 0
    seconds: float = 0.0


class ChromaStore:
    """A Chroma collection whose vectors come from one encoder, checked on open.

    Args:
        collection: the collection's name.
        encoder: the encoder of the documents (:class:`SentenceEncoder` or a model name).
        path: folder of an embedded Chroma database (``PersistentClient``).
        client: any ``chromadb`` client (for example ``chromadb.HttpClient``). With neither
            ``path`` nor ``client`` the collection lives in memory.
        adopt: record this encoder in a collection that holds vectors but was not created by
            stella-rag (after checking their dimension).
        show_progress: progress bar while adding; default: only when stderr is a terminal.

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
        adopt: bool = False,
        show_progress: bool | None = None,
    ) -> None:
        from ._encoder import resolve_encoder

        if not isinstance(collection, str) or not collection:
            raise TypeError(f"collection must be a non-empty name, got {collection!r}")
        if client is not None and path is not None:
            raise ValueError("pass either path= or client=, not both")
        self.encoder = resolve_encoder(encoder)
        self.client = client if client is not None else connect(path)
        self.name = collection
        self.show_progress = show_progress
        self._space = "cosine"
        self.collection = self._open(adopt)

    # ------------------------------------------------------------------ opening
    def _expected(self) -> dict[str, Any]:
        return {
            META_MODEL: str(self.encoder.model_id),
            META_DIM: int(self.encoder.dim),
            META_NORMALIZE: bool(getattr(self.encoder, "normalize", True)),
            META_TRUNCATE: int(getattr(self.encoder, "truncate_dim", None) or 0),
        }

    def _open(self, adopt: bool) -> Any:
        existing = self._call(lambda: _get_collection(self.client, self.name))
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
        stored_dim = _stored_dim(existing)
        if stored_dim is not None and stored_dim != expected[META_DIM]:
            raise EncoderMismatchError(
                f"collection {self.name!r} holds {stored_dim}-d vectors but "
                f"{expected[META_MODEL]!r} makes {expected[META_DIM]}-d vectors"
            )
        if stored_dim is None or adopt:
            kept = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
            self._call(lambda: existing.modify(metadata={**kept, **expected}))
        elif (id(self.client), self.name) not in _warned:
            _warned.add((id(self.client), self.name))
            warnings.warn(
                f"collection {self.name!r} was not created by stella-rag, so it does not record "
                f"which encoder wrote it; its {stored_dim}-d vectors match "
                f"{expected[META_MODEL]!r} in size only. If that model wrote them, pass "
                "adopt=True once to record it.",
                StellaRagWarning,
                stacklevel=3,
            )
        return existing

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
    ) -> AddReport:
        """Like :meth:`add`, and reports how many passages were embedded, skipped, updated."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of strings, not a single string")
        report = AddReport()
        started = time.perf_counter()
        sized = all(isinstance(x, Sequence) for x in (texts, metadatas or [], ids or []))
        if sized:  # validate everything before the first write
            self._check_lengths(texts, metadatas, ids)  # type: ignore[arg-type]
            for i, text in enumerate(texts):
                check_text(text, f"text at position {i}")
            for i, meta in enumerate(metadatas or []):
                check_metadata(meta, f"metadata at position {i}")
        total = len(texts) if isinstance(texts, Sequence) else None
        bar = self._progress(total)
        try:
            rows = _rows(texts, metadatas, ids)
            size = min(_CHUNK, self._max_batch())
            for chunk in _chunks(rows, size):
                self._write_chunk(chunk, report)
                if bar is not None:
                    bar.update(len(chunk))
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
        try:
            return int(self.client.get_max_batch_size())
        except Exception:
            return _CHUNK

    def _write_chunk(self, chunk: list[tuple[int, Any, Any, Any]], report: AddReport) -> None:
        items: dict[str, tuple[str, dict[str, Any] | None]] = {}
        order: list[str] = []
        for position, text, meta, given_id in chunk:
            text = check_text(text, f"text at position {position}")
            meta = check_metadata(meta, f"metadata at position {position}")
            if given_id is None:
                pid = text_id(text)
            elif isinstance(given_id, str) and given_id:
                pid = given_id
            else:
                raise TypeError(f"id at position {position} must be a non-empty string")
            order.append(pid)
            items.setdefault(pid, (text, meta))
        report.ids.extend(order)
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
        report.skipped += len(chunk) - len(to_embed) - len(meta_only)
        if meta_only:
            self._call(
                lambda: self.collection.update(
                    ids=meta_only, metadatas=[items[p][1] for p in meta_only]
                )
            )
            report.updated += len(meta_only)
        if not to_embed:
            return
        vectors = self.encoder.encode_documents([items[p][0] for p in to_embed])
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
        """
        k = check_k(k)
        if isinstance(query, str):
            check_text(query, "the query")
            vector = self.encoder.encode_queries([query])[0]
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
        rows = [check_vector(v, self.dim) for v in np.asarray(vectors, dtype=np.float32)]
        if not rows:
            return []
        n = min(k, self.count())
        if n == 0:
            return [Hits() for _ in rows]
        result = self._call(
            lambda: self.collection.query(
                query_embeddings=np.stack(rows),
                n_results=n,
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
        """Run a Chroma call, retrying connection errors with bounded backoff."""
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                return fn()
            except EncoderMismatchError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc):
                    if "readonly" in str(exc).lower() or "read-only" in str(exc).lower():
                        raise StoreError(
                            f"collection {self.name!r} cannot be written: {exc}"
                        ) from exc
                    raise
                if delay is None:
                    raise StoreUnavailableError(
                        f"the Chroma server for collection {self.name!r} stopped answering "
                        f"({type(exc).__name__}) and did not come back within "
                        f"{sum(_RETRY_DELAYS_S):.0f} s"
                    ) from None
                time.sleep(delay)
        raise AssertionError("unreachable")


def _describe(meta: Mapping[str, Any]) -> str:
    trunc = meta.get(META_TRUNCATE)
    return (
        f"{meta.get(META_MODEL)!r} ({meta.get(META_DIM)}-d"
        + (f", truncate_dim={trunc}" if trunc else "")
        + (", normalized" if meta.get(META_NORMALIZE) else ", not normalized")
        + ")"
    )


def _get_collection(client: Any, name: str) -> Any:
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:
        if _is_connection_error(exc):
            raise
        if type(exc).__name__ in ("NotFoundError", "InvalidCollectionException") or (
            "does not exist" in str(exc)
        ):
            return None
        raise


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
