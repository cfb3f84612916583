"""A Chroma embedding function backed by a stella-rag :class:`~stella_rag.SentenceEncoder`.

.. code-block:: python

    import chromadb
    from stella_rag.chroma import StellaEmbeddingFunction

    client = chromadb.PersistentClient("./db")
    docs = client.create_collection("docs", embedding_function=StellaEmbeddingFunction("minilm"))
    docs.add(ids=["a"], documents=["The museum is closed on Mondays."])
    # later, in another process: Chroma rebuilds the function from the stored configuration
    docs = chromadb.PersistentClient("./db").get_collection("docs")
    docs.query(query_texts=["Is it open on Monday?"], n_results=1)

Documents go through :meth:`SentenceEncoder.encode_documents`, query texts through
:meth:`SentenceEncoder.encode_queries` (Chroma calls :meth:`StellaEmbeddingFunction.embed_query`
for ``query_texts``). Importing this module imports ``chromadb``; the weights load on first use
and are shared with every other encoder of the process that uses the same model.
"""

from __future__ import annotations

import os
from typing import Any, cast

try:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError as exc:  # pragma: no cover - chromadb is a requirement
    from ._install import install_command

    raise ImportError(f"stella_rag.chroma needs chromadb: {install_command()}") from exc

from ._encoder import DEFAULT_MODEL, SentenceEncoder
from ._models import BACKENDS

__all__ = ["StellaEmbeddingFunction"]

NAME = "stella_rag"

# Keys of get_config(), and the types each accepts (None: use the encoder's default).
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "device": (str, type(None)),
    "precision": (str, type(None)),
    "batch_size": (int, type(None)),
    "max_seq_length": (int, type(None)),
    "truncate_dim": (int, type(None)),
    "normalize": (bool,),
    "cache_folder": (str, type(None)),
    "backend": (str,),
    "trust_remote_code": (bool,),
}
# Changing one of these changes the vectors, so a collection's stored vectors would no longer
# match its query vectors.
_FIXED_KEYS = ("model", "truncate_dim", "normalize")


@register_embedding_function
class StellaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function for any sentence-transformers model, through stella-rag.

    Args:
        model: a model alias (``"stella-large-zh"``, ``"minilm"``...), hub id or folder, or a
            :class:`~stella_rag.SentenceEncoder` to wrap as it is.
        device, precision, batch_size, max_seq_length, truncate_dim, normalize, cache_folder,
        backend, trust_remote_code: as for :class:`~stella_rag.SentenceEncoder` (only with a
            model name).

    The configuration Chroma stores names the model by its id (a hub id, or the absolute folder
    of a local model) and keeps ``device``/``precision`` as asked (``None``: chosen on load).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceEncoder = DEFAULT_MODEL,
        *,
        device: str | None = None,
        precision: str | None = None,
        batch_size: int | None = None,
        max_seq_length: int | None = None,
        truncate_dim: int | None = None,
        normalize: bool = True,
        cache_folder: str | None = None,
        backend: str = "torch",
        trust_remote_code: bool = False,
    ) -> None:
        if not isinstance(model, SentenceEncoder):
            if backend not in BACKENDS:
                raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
            model = SentenceEncoder(
                model,
                device=device,
                precision=cast(Any, precision),
                batch_size=batch_size,
                max_seq_length=max_seq_length,
                truncate_dim=truncate_dim,
                normalize=normalize,
                cache_folder=cache_folder,
                backend=cast(Any, backend),
                trust_remote_code=trust_remote_code,
            )
        self._encoder = model
        self._config = _encoder_config(model)
        self.validate_config(self._config)

    @property
    def encoder(self) -> SentenceEncoder:
        """The wrapped encoder."""
        return self._encoder

    def __repr__(self) -> str:
        return f"StellaEmbeddingFunction({self._config['model']!r})"

    # ---------------------------------------------------------------- embedding
    def __call__(self, input: Documents) -> Embeddings:
        """Embed passages (the document side)."""
        return list(self._encoder.encode_documents(_texts(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        """Embed query texts (the query side: the model's query prompt, if it has one)."""
        return list(self._encoder.encode_queries(_texts(input)))

    # ----------------------------------------------------------- chroma protocol
    @staticmethod
    def name() -> str:
        return NAME

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        # Unnormalised vectors make inner product and L2 rank differently from cosine.
        return ["cosine", "ip", "l2"] if self._config["normalize"] else ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> StellaEmbeddingFunction:
        StellaEmbeddingFunction.validate_config(config)
        kwargs = {k: v for k, v in config.items() if k != "model"}
        return StellaEmbeddingFunction(config["model"], **kwargs)

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Check a stored configuration: known keys, a model, values of the right type."""
        if not isinstance(config, dict):
            raise ValueError(f"a {NAME} config must be a dict, got {type(config).__name__}")
        unknown = sorted(set(config) - set(_CONFIG_TYPES))
        if unknown:
            raise ValueError(
                f"unknown {NAME} config key(s) {unknown}; valid keys are {sorted(_CONFIG_TYPES)}"
            )
        if not config.get("model"):
            raise ValueError(f"a {NAME} config needs a 'model', got {config.get('model')!r}")
        for key, value in config.items():
            types = _CONFIG_TYPES[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
                raise ValueError(f"config[{key!r}] must be {names}, got {value!r}")

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Refuse updates that would change the vectors (model, truncate_dim, normalize)."""
        for key in _FIXED_KEYS:
            if key in new_config and new_config[key] != old_config.get(key):
                raise ValueError(
                    f"The {key} cannot be changed after the embedding function has been "
                    f"initialized (stored {old_config.get(key)!r}, got {new_config[key]!r}); "
                    "the stored vectors were made with the stored value"
                )


def _texts(input: Any) -> list[str]:
    if isinstance(input, str):  # Chroma passes lists; a bare string is one document
        return [input]
    return list(input)


def _encoder_config(encoder: SentenceEncoder) -> dict[str, Any]:
    # The arguments the encoder was made with (not the resolved values): reading resolved ones
    # such as max_seq_length would load the weights.
    return {
        "model": encoder.model_id,
        "device": getattr(encoder, "_device_arg", None),
        "precision": getattr(encoder, "_precision", None),
        "batch_size": getattr(encoder, "_batch_size", None),
        "max_seq_length": getattr(encoder, "_max_seq_length", None),
        "truncate_dim": encoder.truncate_dim,
        "normalize": bool(encoder.normalize),
        "cache_folder": getattr(encoder, "_cache_folder", None),
        "backend": encoder.backend,
        "trust_remote_code": bool(getattr(encoder, "_trust_remote_code", False)),
    }
