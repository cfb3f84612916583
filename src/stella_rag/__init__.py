"""stella-rag: sentence-transformers embeddings and conversational retrieval for RAG apps.

Heavy dependencies (torch, sentence-transformers, chromadb) load on first use, not on import.
"""

from __future__ import annotations

from ._dialogue import DEFAULT_ROLES, DialogueEncoder, DialogueWindow
from ._encoder import SentenceEncoder
from ._errors import (
    EmptyDialogueError,
    EncoderMismatchError,
    ModelNotAvailableError,
    StellaRagError,
    StoreError,
    StoreUnavailableError,
)
from ._hits import Hit, Hits
from ._models import MODEL_ALIASES
from ._retriever import ConversationalRetriever
from ._similarity import similarity
from ._store import AddReport, ChromaStore, StellaRagWarning, connect, text_id
from ._strategies import STRATEGIES, QueryStrategy
from ._turns import Turn

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ROLES",
    "MODEL_ALIASES",
    "STRATEGIES",
    "AddReport",
    "ChromaStore",
    "ConversationalRetriever",
    "DialogueEncoder",
    "DialogueWindow",
    "EmptyDialogueError",
    "EncoderMismatchError",
    "Hit",
    "Hits",
    "ModelNotAvailableError",
    "QueryStrategy",
    "SentenceEncoder",
    "StellaRagError",
    "StellaRagWarning",
    "StoreError",
    "StoreUnavailableError",
    "Turn",
    "__version__",
    "connect",
    "similarity",
    "text_id",
]
