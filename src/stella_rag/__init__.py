"""stella-rag: sentence-transformers embeddings and conversational retrieval for RAG apps.

Heavy dependencies (torch, sentence-transformers, chromadb) load on first use, not on import.
"""

from __future__ import annotations

from ._budget import TruncationWarner
from ._client import connect
from ._dialogue import DEFAULT_ROLES, DialogueEncoder, DialogueExplanation, DialogueWindow
from ._encoder import DEFAULT_MODEL, Encoder, SentenceEncoder
from ._errors import (
    CollectionNotFoundError,
    DaemonError,
    EmptyDialogueError,
    EncoderMismatchError,
    InputFileError,
    ModelNotAvailableError,
    StellaRagError,
    StellaRagWarning,
    StoreError,
    StoreUnavailableError,
    TrainingDataError,
)
from ._hits import Hit, Hits
from ._ingest import FileReport, IngestReport, SkippedFile, Splitter, ingest
from ._models import MODEL_ALIASES
from ._retriever import ConversationalRetriever
from ._similarity import similarity
from ._store import AddReport, ChromaStore, text_id
from ._strategies import STRATEGIES, QueryStrategy
from ._turns import Turn

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_ROLES",
    "MODEL_ALIASES",
    "STRATEGIES",
    "AddReport",
    "ChromaStore",
    "CollectionNotFoundError",
    "ConversationalRetriever",
    "DaemonError",
    "DialogueEncoder",
    "DialogueExplanation",
    "DialogueWindow",
    "EmptyDialogueError",
    "Encoder",
    "EncoderMismatchError",
    "FileReport",
    "Hit",
    "Hits",
    "IngestReport",
    "InputFileError",
    "ModelNotAvailableError",
    "QueryStrategy",
    "SentenceEncoder",
    "SkippedFile",
    "Splitter",
    "StellaRagError",
    "StellaRagWarning",
    "StoreError",
    "StoreUnavailableError",
    "TrainingDataError",
    "TruncationWarner",
    "Turn",
    "__version__",
    "connect",
    "ingest",
    "similarity",
    "text_id",
]
