"""A warm encoder process, so that one-shot commands skip loading torch and the model.

A ``stella-rag search`` spends most of its seconds importing torch, transformers and
sentence-transformers and loading the model; the search itself takes milliseconds. The daemon
does that once and keeps the encoders loaded: a client sends texts over a Unix socket that only
its user can open (:mod:`multiprocessing.connection`, with a random key) and gets vectors back.
The client never imports torch. Only the embedding runs in the daemon; the client opens the
vector store itself, so what it reads is never a stale copy held by another process.

    start_daemon()                  # or: stella-rag daemon start
    encoder = DaemonEncoder("minilm")   # an Encoder: encode_queries, encode_documents, dim...
    stop_daemon()

It ends by itself after ``idle_timeout`` seconds without a request. POSIX only (Unix sockets).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import DaemonError, StellaRagError

__all__ = [
    "DaemonEncoder",
    "DaemonError",
    "DaemonStatus",
    "daemon_status",
    "start_daemon",
    "stop_daemon",
]

DEFAULT_IDLE_TIMEOUT = 1800.0
"""Seconds without a request after which the daemon exits."""

_CONNECT_TIMEOUT = 2.0


def _version() -> str:
    from . import __version__

    return __version__


def daemon_dir() -> Path:
    """The folder of the daemon's socket, key and log (``STELLA_RAG_DAEMON_DIR`` overrides).

    ``$XDG_RUNTIME_DIR/stella-rag`` where that exists, else ``<tmp>/stella-rag-<uid>``; made
    readable by its owner only.
    """
    env = os.environ.get("STELLA_RAG_DAEMON_DIR")
    if env:
        folder = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "stella-rag"
    else:
        folder = Path(tempfile.gettempdir()) / f"stella-rag-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DaemonError(
            f"{folder} must belong to you and be private (chmod 700); it holds the daemon's key"
        )
    return folder


def _paths() -> tuple[Path, Path, Path]:
    folder = daemon_dir()
    return folder / "daemon.sock", folder / "daemon.key", folder / "daemon.log"


def _check_platform() -> None:
    import socket

    if not hasattr(socket, "AF_UNIX"):
        raise DaemonError("the stella-rag daemon needs Unix sockets, which this platform lacks")


# ------------------------------------------------------------------------------ client side
def _connect(timeout: float = _CONNECT_TIMEOUT) -> Any | None:
    """A connection to the running daemon, or ``None`` when none answers."""
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    _check_platform()
    sock, key, _ = _paths()
    if not sock.exists() or not key.exists():
        return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(str(sock), family="AF_UNIX", authkey=key.read_bytes())
        except (ConnectionRefusedError, FileNotFoundError, EOFError, AuthenticationError):
            return None  # a socket left by a daemon that died, or one dying now
        except OSError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def _ask(request: dict[str, Any], connection: Any | None = None) -> Any:
    conn = connection or _connect()
    if conn is None:
        raise DaemonError(
            "no stella-rag daemon is running; start one with `stella-rag daemon start`"
        )
    try:
        conn.send(request)
        ok, payload = conn.recv()
    except (EOFError, OSError) as exc:
        raise DaemonError(f"the stella-rag daemon stopped answering ({exc!r})") from exc
    finally:
        conn.close()
    if not ok:
        raise payload
    return payload


@dataclass(frozen=True)
class DaemonStatus:
    """What a running daemon reports about itself."""

    pid: int
    version: str
    python: str
    uptime_s: float
    idle_s: float
    idle_timeout_s: float
    requests: int
    models: tuple[str, ...]
    socket: str


def daemon_status() -> DaemonStatus | None:
    """The running daemon's status, or ``None`` when none answers."""
    conn = _connect()
    if conn is None:
        return None
    return DaemonStatus(**_ask({"op": "status"}, conn))


def start_daemon(
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    preload: Sequence[str] = (),
    wait: float = 120.0,
) -> DaemonStatus:
    """Start the daemon in the background (or return the status of the one already running).

    Args:
        idle_timeout: seconds without a request after which it exits.
        preload: model names to load at once (else each loads on its first request).
        wait: seconds to wait for it to answer.

    Raises:
        DaemonError: it did not come up; the message quotes the end of its log.
    """
    running = daemon_status()
    if running is not None:
        return running
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
    _, _, log = _paths()
    command = [
        sys.executable,
        "-m",
        "stella_rag.daemon",
        "--idle-timeout",
        str(idle_timeout),
        *(arg for name in preload for arg in ("--preload", name)),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        status = daemon_status()
        if status is not None:
            return status
        time.sleep(0.1)
    if process.poll() is None:
        process.terminate()
    status = daemon_status()  # it may have lost a race to a daemon started at the same time
    if status is not None:
        return status
    tail = log.read_text("utf-8", errors="replace")[-1500:].strip()
    raise DaemonError(f"the stella-rag daemon did not start (log {log}):\n{tail}")


def stop_daemon(wait: float = 10.0) -> bool:
    """Stop the running daemon; ``False`` if none was running."""
    conn = _connect()
    if conn is None:
        return False
    _ask({"op": "stop"}, conn)
    sock, _, _ = _paths()
    deadline = time.monotonic() + wait
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


class DaemonEncoder:
    """An :class:`~stella_rag.Encoder` whose forward passes run in the daemon.

    Takes the arguments of :class:`~stella_rag.SentenceEncoder`; the daemon builds that encoder
    once (one per distinct set of arguments) and keeps it loaded. ``model_id``, ``dim`` and the
    settings come from the daemon on first use, in one round trip.

    Raises:
        DaemonError: no daemon answers, or it runs another stella-rag version.
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        self._spec = {"model": None if model is None else os.fspath(model), **kwargs}
        self._info: dict[str, Any] | None = None

    @classmethod
    def available(cls) -> bool:
        """Whether a daemon of this stella-rag version answers."""
        try:
            status = daemon_status()
        except (DaemonError, OSError):
            return False
        return status is not None and status.version == _version()

    def _describe(self) -> dict[str, Any]:
        if self._info is None:
            info = _ask({"op": "describe", "spec": self._spec})
            if info["version"] != _version():
                raise DaemonError(
                    f"the running daemon is stella-rag {info['version']}, this is "
                    f"{_version()}: restart it (`stella-rag daemon stop`, then start)"
                )
            self._info = info
        return self._info

    @property
    def model_id(self) -> str:
        return str(self._describe()["model_id"])

    @property
    def dim(self) -> int:
        return int(self._describe()["dim"])

    @property
    def max_seq_length(self) -> int:
        return int(self._describe()["max_seq_length"])

    @property
    def normalize(self) -> bool:
        return bool(self._describe()["normalize"])

    @property
    def truncate_dim(self) -> int | None:
        value = self._describe()["truncate_dim"]
        return None if value is None else int(value)

    @property
    def device(self) -> str:
        return str(self._describe()["device"])

    def _encode(self, texts: Sequence[str], side: str) -> np.ndarray:
        vectors = _ask({"op": "encode", "spec": self._spec, "side": side, "texts": list(texts)})
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "document")

    def __repr__(self) -> str:
        return f"DaemonEncoder({self._spec['model']!r})"


# ------------------------------------------------------------------------------ daemon side
class _Daemon:
    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.started = time.monotonic()
        self.last = self.started
        self.requests = 0
        self.encoders: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.listener: Any = None
        self.key = b""
        self.stopping = False

    def encoder(self, spec: dict[str, Any]) -> Any:
        from ._encoder import DEFAULT_MODEL, SentenceEncoder

        key = repr(sorted(spec.items()))
        with self.lock:
            found = self.encoders.get(key)
            if found is None:
                kwargs = {k: v for k, v in spec.items() if k != "model"}
                found = SentenceEncoder(spec.get("model") or DEFAULT_MODEL, **kwargs).load()
                self.encoders[key] = found
        return found

    def handle(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "status":
            now = time.monotonic()
            sock, _, _ = _paths()
            return {
                "pid": os.getpid(),
                "version": _version(),
                "python": sys.executable,
                "uptime_s": now - self.started,
                "idle_s": now - self.last,
                "idle_timeout_s": self.idle_timeout,
                "requests": self.requests,
                "models": tuple(sorted({e.model_id for e in self.encoders.values()})),
                "socket": str(sock),
            }
        if op == "describe":
            encoder = self.encoder(request["spec"])
            return {
                "version": _version(),
                "model_id": encoder.model_id,
                "dim": encoder.dim,
                "max_seq_length": encoder.max_seq_length,
                "normalize": encoder.normalize,
                "truncate_dim": encoder.truncate_dim,
                "device": encoder.device,
            }
        if op == "encode":
            encoder = self.encoder(request["spec"])
            texts = request["texts"]
            if request["side"] == "document":
                return encoder.encode_documents(texts)
            return encoder.encode_queries(texts)
        if op == "stop":
            threading.Thread(target=self.close, daemon=True).start()
            return True
        raise ValueError(f"unknown daemon request {op!r}")

    def serve_one(self, conn: Any) -> None:
        with conn:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            self.requests += 1
            try:
                reply: tuple[bool, Any] = (True, self.handle(request))
            except Exception as exc:  # sent to the client, which raises it there
                reply = (False, _portable(exc))
            finally:
                if request.get("op") != "status":  # asking whether it runs keeps nothing alive
                    self.last = time.monotonic()
            with contextlib.suppress(OSError):
                conn.send(reply)

    def close(self) -> None:
        """Make the accept loop end: flag it, then wake it with a connection of our own."""
        from multiprocessing.connection import Client

        self.stopping = True
        sock, _, _ = _paths()
        with (
            contextlib.suppress(OSError, EOFError),
            Client(str(sock), family="AF_UNIX", authkey=self.key),
        ):
            pass

    def watch_idle(self) -> None:
        while not self.stopping:
            time.sleep(min(1.0, self.idle_timeout / 4))
            if time.monotonic() - self.last > self.idle_timeout:
                print(f"idle for {self.idle_timeout:.0f} s: exiting", flush=True)
                self.close()

    def run(self, preload: Sequence[str]) -> None:
        from multiprocessing.connection import Listener

        sock, key_file, _ = _paths()
        self.key = secrets.token_bytes(32)
        try:
            self.listener = Listener(str(sock), family="AF_UNIX", authkey=self.key)
        except OSError:
            if _listening(sock):  # another daemon holds the socket: it stays, we go
                print("another stella-rag daemon is running: exiting", flush=True)
                return
            sock.unlink(missing_ok=True)  # left by a daemon that died
            self.listener = Listener(str(sock), family="AF_UNIX", authkey=self.key)
        sock.chmod(0o600)
        # The key is written only by the daemon that holds the socket, readable by its owner.
        partial = key_file.with_name(f".key-{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.key)
        partial.replace(key_file)
        print(f"stella-rag daemon {_version()} pid {os.getpid()} on {sock}", flush=True)
        import sentence_transformers  # noqa: F401  (the import is most of what a client saves)

        for name in preload:
            self.encoder({"model": name})
        threading.Thread(target=self.watch_idle, daemon=True).start()
        try:
            while True:
                try:
                    conn = self.listener.accept()
                except Exception:
                    if self.stopping:
                        break
                    continue
                if self.stopping:
                    conn.close()
                    break
                threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()
        finally:
            self.listener.close()  # removes the socket file
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            print("stopped", flush=True)


def _listening(sock: Path) -> bool:
    """Whether a process accepts connections on the Unix socket ``sock`` (no key needed)."""
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(sock))
    except OSError:  # refused: nobody listens; the file is left over
        return False
    finally:
        probe.close()
    return True


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a StellaRagError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return StellaRagError(f"{type(exc).__name__}: {exc}")


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stella_rag.daemon")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("--preload", action="append", default=[])
    args = parser.parse_args(argv)
    _Daemon(args.idle_timeout).run(args.preload)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
