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
from ._validate import check_k, check_metadata, check_text, check_vector, check_vector_rows

__all__ = ["AddReport", "ChromaStore", "StellaRagWarning", "connect", "text_id"]

T = TypeVar("T")

META_MODEL = "stella_rag:model_id"
META_DIM = "stella_rag:dim"
META_NORMALIZE = "stella_rag:normalize"
META_TRUNCATE = "stella_rag:truncate_dim"

_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
_CHUNK = 512
_CONNECT_TIMEOUT_S = 5.0
"""How long :func:`connect` waits for a Chroma server to answer before giving up."""
_REQUEST_TIMEOUT_S = 120.0
"""The longest one request to a Chroma server may take (chromadb's own client waits forever)."""
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
        server: ``"host:port"`` of a Chroma server (``chroma run``); ``"https://host:port"``
            implies ``ssl=True``.
        headers: extra HTTP headers for the server, for example
            ``{"Authorization": "Bearer <token>"}`` or ``{"X-Chroma-Token": "<token>"}``.
            Their values never appear in error messages.
        ssl: connect to the server over HTTPS (certificates are verified).

    Raises:
        StoreUnavailableError: the server does not answer within a few seconds.
        StoreError: the server refused the credentials, or the folder cannot be opened.
    """
    try:
        import chromadb
    except ImportError as exc:  # pragma: no cover - chromadb is a requirement
        raise ImportError("ChromaStore needs chromadb: pip install 'stella-rag'") from exc
    if server is not None:
        return _connect_server(chromadb, server, dict(headers or {}), ssl)
    if path is None:
        return chromadb.EphemeralClient(settings=_settings())
    folder = os.fspath(path)
    try:
        os.makedirs(folder, exist_ok=True)
        return chromadb.PersistentClient(path=folder, settings=_settings())
    except Exception as exc:
        raise StoreError(f"cannot open a Chroma database at {folder!r}: {exc}") from exc


def _redact(text: str, headers: Mapping[str, str]) -> str:
    for value in headers.values():
        for secret in {value, *value.split()}:  # "Bearer <token>": the token alone too
            if len(secret) >= 4 and secret.lower() not in ("bearer", "basic"):
                text = text.replace(secret, "***")
    return text


def _connect_server(chromadb: Any, server: str, headers: dict[str, str], ssl: bool) -> Any:
    if not isinstance(server, str):
        raise TypeError(f"server must be a 'host:port' string, got {type(server).__name__}")
    address = server.strip().rstrip("/")
    for scheme in ("http://", "https://"):
        if address.lower().startswith(scheme):
            ssl = ssl or scheme == "https://"
            address = address[len(scheme) :]
    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit():
        raise ValueError(f"server must be 'host:port', got {server!r}")
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"headers must map strings to strings; the header {key!r} does not")
    address = f"{host}:{port_text}"
    _probe_server(host, int(port_text), headers, ssl)
    try:
        client = chromadb.HttpClient(
            host=host, port=int(port_text), ssl=ssl, headers=headers, settings=_settings()
        )
    except Exception as exc:
        raise StoreUnavailableError(
            f"cannot use the Chroma server at {address}: "
            f"{_redact(f'{type(exc).__name__}: {exc}', headers)}"
        ) from None
    _bound_requests(client)
    return client


def _probe_server(host: str, port: int, headers: Mapping[str, str], ssl: bool) -> None:
    """Fail within seconds, naming the address, when no Chroma server answers there.

    chromadb's own client waits forever on a server that accepts connections but never
    answers, and reports a rejected token as "Could not connect".
    """
    import httpx

    address = f"{host}:{port}"
    base = f"{'https' if ssl else 'http'}://{address}"
    try:
        with httpx.Client(timeout=_CONNECT_TIMEOUT_S, headers=dict(headers)) as http:
            http.get(f"{base}/api/v2/heartbeat")
            answer = http.get(f"{base}/api/v2/auth/identity")
    except Exception as exc:
        reason = _redact(f"{type(exc).__name__}: {exc}", headers)
        raise StoreUnavailableError(
            f"cannot reach the Chroma server at {address}{' over HTTPS' if ssl else ''} "
            f"within {_CONNECT_TIMEOUT_S:.0f} s ({reason}); is `chroma run` running there?"
        ) from None
    if answer.status_code in (401, 403):
        raise StoreError(
            f"the Chroma server at {address} refused the credentials (HTTP {answer.status_code}); "
            f"check the headers= passed to connect() (header names sent: {sorted(headers)})"
        )


def _bound_requests(client: Any) -> None:
    """Give every later request a time limit, so that a hung server becomes a retried error."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is None:
        return
    import httpx

    session.timeout = httpx.Timeout(_REQUEST_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S)


def _address_of(client: Any) -> str:
    url = getattr(getattr(client, "_server", None), "_api_url", None)
    return f" at {url.rsplit('/api', 1)[0]}" if isinstance(url, str) else ""


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {
        "ConnectError",
        "ConnectTimeout",
        "ReadError",
        "RemoteProtocolError",
        "ConnectionError",
        "ReadTimeout",
        "WriteError",
        "PoolTimeout",
    }:
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

    @classmethod
    def from_collection(
        cls,
        collection: Any,
        *,
        encoder: Any,
        adopt: bool = False,
        show_progress: bool | None = None,
    ) -> ChromaStore:
        """Wrap a chromadb ``Collection`` object, such as the one ``langchain_chroma.Chroma`` or
        LlamaIndex's ``ChromaVectorStore`` holds, with the same checks as the constructor."""
        return cls(
            collection.name,
            encoder=encoder,
            client=_client_of(collection),
            adopt=adopt,
            show_progress=show_progress,
        )

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
        if texts is None or not isinstance(texts, Iterable) or isinstance(texts, Mapping):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        for name, other in (("metadatas", metadatas), ("ids", ids)):
            if other is not None and (
                isinstance(other, (str, bytes, Mapping)) or not isinstance(other, Iterable)
            ):
                raise TypeError(f"{name} must be a list, got {type(other).__name__}")
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
            for chunk in _chunks(rows, size):
                try:
                    self._write_chunk(chunk, report)
                except (StoreError, TypeError, ValueError) as exc:
                    error = _partial(exc, done, report)
                    if error is exc:
                        raise
                    raise error from exc
                done += len(chunk)
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
        """Run a Chroma call, retrying connection errors with bounded backoff."""
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                return fn()
            except EncoderMismatchError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc):
                    fault = _storage_fault(exc)
                    if fault is not None:
                        raise StoreError(
                            f"collection {self.name!r}: the database {fault}: {exc}"
                        ) from exc
                    raise
                if delay is None:
                    raise StoreUnavailableError(
                        f"the Chroma server{_address_of(self.client)} for collection "
                        f"{self.name!r} stopped answering ({type(exc).__name__}) and did not "
                        f"come back within {sum(_RETRY_DELAYS_S):.0f} s"
                    ) from None
                time.sleep(delay)
        raise AssertionError("unreachable")


def _storage_fault(exc: BaseException) -> str | None:
    """What went wrong with the database's storage, if that is what ``exc`` says."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return "is read-only"
    if "disk is full" in text or "no space" in text or "disk full" in text:
        return "ran out of disk space"
    if "disk i/o" in text or "i/o error" in text:
        return "could not write to disk (full disk or I/O error)"
    if isinstance(exc, OSError) or type(exc).__name__ == "InternalError":
        return "failed"
    return None


def _describe(meta: Mapping[str, Any]) -> str:
    trunc = meta.get(META_TRUNCATE)
    return (
        f"{meta.get(META_MODEL)!r} ({meta.get(META_DIM)}-d"
        + (f", truncate_dim={trunc}" if trunc else "")
        + (", normalized" if meta.get(META_NORMALIZE) else ", not normalized")
        + ")"
    )


def _client_of(collection: Any) -> Any:
    """The client of a chromadb collection object.

    A collection keeps only its client's server API; a ``Client`` made with the same settings,
    tenant and database shares that API (chromadb caches one system per settings).
    """
    from chromadb.api.client import Client

    server = collection._client
    return Client(
        tenant=collection.tenant, database=collection.database, settings=server._system.settings
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
        error = kind(
            f"{exc}; {stored}, and the chunk that failed may be partly stored. Re-running the "
            "same call completes it without duplicates."
        )
    error.report = report  # type: ignore[attr-defined]
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
