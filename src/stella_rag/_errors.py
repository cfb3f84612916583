"""The errors stella-rag raises.

    StellaRagError
     ├── ModelNotAvailableError      the model is neither on disk nor reachable
     ├── EncoderMismatchError        two encoders (or an encoder and a collection) disagree
     ├── EmptyDialogueError          a dialogue with no usable turn (also a ValueError)
     └── StoreError                  the vector store refused or could not be reached
          └── StoreUnavailableError  the Chroma server is down or unreachable

Errors caused by the caller's input (``None`` in a list of texts, a bad ``k``) are plain
``TypeError`` / ``ValueError``, as Python users expect; their messages name the position of
the bad item.
"""

from __future__ import annotations

__all__ = [
    "EmptyDialogueError",
    "EncoderMismatchError",
    "ModelNotAvailableError",
    "StellaRagError",
    "StoreError",
    "StoreUnavailableError",
]


class StellaRagError(Exception):
    """Base class of every error stella-rag raises on purpose."""


class ModelNotAvailableError(StellaRagError):
    """A model could not be found locally and could not be downloaded."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class EncoderMismatchError(StellaRagError):
    """Vectors from two different encoders would be compared."""


class EmptyDialogueError(StellaRagError, ValueError):
    """A dialogue has no turn that can be encoded."""


class StoreError(StellaRagError):
    """The vector store refused an operation."""


class StoreUnavailableError(StoreError):
    """The vector store (a Chroma server) cannot be reached."""
