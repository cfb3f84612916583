"""Chroma clients: connecting, probing a server, retrying calls, and what chromadb's faults mean.

Every foreign exception stella-rag looks at (from chromadb, httpx, sqlite or the OS) goes
through :func:`classify`, which reads :data:`FAULTS`, the one table that says what each means:

=================  ==============================================  =============================
kind               recognised by                                   becomes
=================  ==============================================  =============================
``unreachable``    httpx connect/read/write errors, "Could not     retried with backoff, then
                   connect"                                        :class:`StoreUnavailableError`
``not_found``      ``NotFoundError``, "does not exist"             ``None`` from
                                                                   :func:`get_collection`
``storage``        read-only, disk full, I/O error, ``OSError``,   :class:`StoreError`
                   chromadb's ``InternalError``
``chroma``         any other chromadb exception                    raised as it is (the CLI
                                                                   prints it on one line)
=================  ==============================================  =============================
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ._errors import EncoderMismatchError, StoreError, StoreUnavailableError

__all__ = ["FAULTS", "Fault", "call", "classify", "connect", "get_collection"]

T = TypeVar("T")

_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
_CONNECT_TIMEOUT_S = 5.0
"""How long :func:`connect` waits for a Chroma server to answer before giving up."""
_REQUEST_TIMEOUT_S = 120.0
"""The longest one request to a Chroma server may take (chromadb's own client waits forever)."""

FaultKind = Literal["unreachable", "not_found", "storage", "chroma"]


@dataclass(frozen=True)
class Fault:
    """One row of :data:`FAULTS`: how to recognise a foreign exception, and what it means.

    An exception matches when a class in its MRO has one of ``names``, it is an instance of one
    of ``types``, or its message (lower-cased) contains one of ``phrases``.
    """

    kind: FaultKind
    says: str
    names: frozenset[str] = frozenset()
    types: tuple[type[BaseException], ...] = ()
    phrases: tuple[str, ...] = ()
    module: str | None = None

    def matches(self, exc: BaseException) -> bool:
        if self.names & {cls.__name__ for cls in type(exc).__mro__}:
            return True
        if self.types and isinstance(exc, self.types):
            return True
        if self.module is not None and type(exc).__module__.split(".")[0] == self.module:
            return True
        text = str(exc).lower()
        return any(phrase in text for phrase in self.phrases)


FAULTS: tuple[Fault, ...] = (
    # First: a server that is down or restarting says so in many ways, some of them OSErrors.
    Fault(
        "unreachable",
        "stopped answering",
        names=frozenset(
            {
                "ConnectError",
                "ConnectTimeout",
                "ReadError",
                "RemoteProtocolError",
                "ConnectionError",
                "ReadTimeout",
                "WriteError",
                "PoolTimeout",
            }
        ),
        phrases=("could not connect",),
    ),
    Fault(
        "not_found",
        "has no such collection",
        names=frozenset({"NotFoundError", "InvalidCollectionException"}),
        phrases=("does not exist",),
    ),
    Fault("storage", "is read-only", phrases=("readonly", "read-only", "permission denied")),
    Fault("storage", "ran out of disk space", phrases=("disk is full", "no space", "disk full")),
    Fault(
        "storage",
        "could not write to disk (full disk or I/O error)",
        phrases=("disk i/o", "i/o error"),
    ),
    Fault("storage", "failed", names=frozenset({"InternalError"}), types=(OSError,)),
    Fault("chroma", "refused the request", module="chromadb"),
)
"""What chromadb's and httpx's exceptions mean, checked in order; the first match wins."""


def classify(exc: BaseException) -> Fault | None:
    """The row of :data:`FAULTS` that ``exc`` matches, or ``None`` for a fault not ours to map."""
    if isinstance(exc, (EncoderMismatchError, StoreError)):
        return None  # already ours
    for fault in FAULTS:
        if fault.matches(exc):
            return fault
    return None


def is_unreachable(exc: BaseException) -> bool:
    fault = classify(exc)
    return fault is not None and fault.kind == "unreachable"


# ------------------------------------------------------------------------------- calls
def call(fn: Callable[[], T], *, collection: str = "", client: Any = None) -> T:
    """Run a Chroma call, retrying while the server is unreachable, mapping faults to ours.

    ``collection`` names the collection in the messages (none for a call about the database).
    """
    for delay in (*_RETRY_DELAYS_S, None):
        try:
            return fn()
        except Exception as exc:
            fault = classify(exc)
            if fault is None or fault.kind in ("not_found", "chroma"):
                raise
            if fault.kind == "storage":
                where = f"collection {collection!r}: the database" if collection else "the database"
                raise StoreError(f"{where} {fault.says}: {exc}") from exc
            if delay is None:
                what = f" for collection {collection!r}" if collection else ""
                raise StoreUnavailableError(
                    f"the Chroma server{address_of(client)}{what} {fault.says} "
                    f"({type(exc).__name__}) and did not come back within "
                    f"{sum(_RETRY_DELAYS_S):.0f} s"
                ) from None
            time.sleep(delay)
    raise AssertionError("unreachable")


def get_collection(client: Any, name: str) -> Any:
    """The collection ``name`` (with no embedding function), or ``None`` if there is none."""
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as exc:
        fault = classify(exc)
        if fault is not None and fault.kind == "not_found":
            return None
        raise


def address_of(client: Any) -> str:
    """`` at http://host:port`` for a client of a Chroma server, else ``""``."""
    url = getattr(getattr(client, "_server", None), "_api_url", None)
    return f" at {url.rsplit('/api', 1)[0]}" if isinstance(url, str) else ""


# ---------------------------------------------------------------------------- connecting
def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    server: str | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    token_header: Literal["Authorization", "X-Chroma-Token"] = "Authorization",
    ssl: bool = False,
    cloud: bool = False,
    api_key: str | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> Any:
    """A Chroma client: a server at ``"host:port"``, Chroma Cloud, embedded at ``path``, or in
    memory.

    Args:
        path: folder of an embedded (``PersistentClient``) database.
        server: ``"host:port"`` of a Chroma server (``chroma run``); ``"https://host:port"``
            implies ``ssl=True``.
        headers: extra HTTP headers for the server, for example for an authenticating proxy.
        token: a token for a server that checks one (Chroma's token auth, or a proxy): sent as
            ``Authorization: Bearer <token>``, or as ``X-Chroma-Token: <token>`` with
            ``token_header="X-Chroma-Token"``.
        ssl: connect to the server over HTTPS (certificates are verified).
        cloud: connect to Chroma Cloud (also implied by ``api_key``).
        api_key, tenant, database: Chroma Cloud's credentials; default: the environment
            variables ``CHROMA_API_KEY``, ``CHROMA_TENANT``, ``CHROMA_DATABASE`` (without a
            tenant and database, those of the key).

    Header values, tokens and API keys never appear in error messages or logs.

    Raises:
        StoreUnavailableError: the server does not answer within a few seconds.
        StoreError: the server refused the credentials, or the folder cannot be opened.
    """
    try:
        import chromadb
    except ImportError as exc:  # pragma: no cover - chromadb is a requirement
        from ._install import install_command

        raise ImportError(f"ChromaStore needs chromadb: {install_command()}") from exc
    if cloud or api_key is not None:
        if server is not None or path is not None or headers or token is not None:
            raise ValueError(
                "Chroma Cloud takes api_key=, tenant= and database=; "
                "not path=, server=, headers= or token="
            )
        return _connect_cloud(chromadb, api_key, tenant, database)
    if token is not None:
        if server is None:
            raise ValueError("token= is for a Chroma server: pass server='host:port' too")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty string")
        value = token if token_header == "X-Chroma-Token" else f"Bearer {token}"
        headers = {**dict(headers or {}), token_header: value}
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
    except Exception as exc:  # whatever stops the probe, nothing usable answers there
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


_CLOUD_HOST = "api.trychroma.com"


def _connect_cloud(
    chromadb: Any,
    api_key: str | None,
    tenant: str | None,
    database: str | None,
    *,
    host: str = _CLOUD_HOST,
    port: int = 443,
    ssl: bool = True,
) -> Any:
    key = api_key or os.environ.get("CHROMA_API_KEY")
    if not key:
        raise StoreError(
            "Chroma Cloud needs an API key: pass api_key= or set CHROMA_API_KEY "
            "(and tenant= / database=, or CHROMA_TENANT / CHROMA_DATABASE, to choose others "
            "than the key's)"
        )
    headers = {"X-Chroma-Token": key}  # how chromadb's CloudClient sends the key
    try:
        _probe_server(host, port, headers, ssl)
    except StoreUnavailableError:
        raise
    except StoreError:
        raise StoreError(
            f"Chroma Cloud ({host}) refused the API key; check api_key= or CHROMA_API_KEY"
        ) from None
    try:
        client = chromadb.CloudClient(
            tenant=tenant,
            database=database,
            api_key=key,
            settings=_settings(),
            cloud_host=host,
            cloud_port=port,
            enable_ssl=ssl,
        )
    except Exception as exc:
        raise StoreError(
            f"cannot use Chroma Cloud ({host}): {_redact(f'{type(exc).__name__}: {exc}', headers)}"
        ) from None
    _bound_requests(client)
    return client


def _bound_requests(client: Any) -> None:
    """Give every later request a time limit, so that a hung server becomes a retried error."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is None:
        return
    import httpx

    session.timeout = httpx.Timeout(_REQUEST_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S)
