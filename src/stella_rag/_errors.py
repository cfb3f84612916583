"""The errors and the warning stella-rag raises.

    StellaRagError
     ├── ModelNotAvailableError      the model is neither on disk nor reachable (.model)
     ├── EncoderMismatchError        two encoders (or an encoder and a collection) disagree
     ├── EmptyDialogueError          a dialogue with no usable turn (also a ValueError)
     ├── InputFileError              a file to index cannot be read or has the wrong shape
     ├── CliError                    the ``stella-rag`` command was used wrongly
     ├── TrainingDataError           a training record or source is unusable (also a ValueError)
     ├── DaemonError                 the encoder daemon cannot be started, reached or used
     └── StoreError                  the vector store refused or failed (.report)
          ├── StoreUnavailableError  the Chroma server is down or unreachable
          └── CollectionNotFoundError    no collection of that name (.name, .available)

    StellaRagWarning (a UserWarning)  something works, but not the way you probably meant

Errors caused by the caller's input (``None`` in a list of texts, a bad ``k``) are plain
``TypeError`` / ``ValueError``, as Python users expect; their messages name the position of
the bad item. The faults of chromadb and httpx that become a :class:`StoreError` are listed in
one table, ``stella_rag._client.FAULTS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import AddReport

__all__ = [
    "CliError",
    "CollectionNotFoundError",
    "EmptyDialogueError",
    "EncoderMismatchError",
    "InputFileError",
    "ModelNotAvailableError",
    "StellaRagError",
    "StellaRagWarning",
    "StoreError",
    "StoreUnavailableError",
    "TrainingDataError",
]


class StellaRagError(Exception):
    """Base class of every error stella-rag raises on purpose."""


class ModelNotAvailableError(StellaRagError):
    """A model could not be found locally and could not be downloaded."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: it crosses processes (daemon, Ray)
        return (type(self), (self.model, str(self)), self.__dict__)


class EncoderMismatchError(StellaRagError):
    """Vectors from two different encoders would be compared."""


class EmptyDialogueError(StellaRagError, ValueError):
    """A dialogue has no turn that can be encoded."""


class InputFileError(StellaRagError):
    """A file to index cannot be read or does not have the expected shape."""


class CliError(StellaRagError):
    """A mistake in how the command was used (reported as one line, exit code 1)."""


class TrainingDataError(StellaRagError, ValueError):
    """Training data that cannot be used: a bad record (the message names file and line), a
    missing file, or a data set that cannot be reached."""


class DaemonError(StellaRagError):
    """The encoder daemon (:mod:`stella_rag.daemon`) cannot be started, reached or used."""


class StoreError(StellaRagError):
    """The vector store refused an operation.

    Attributes:
        report: for a write that stopped part way, the :class:`~stella_rag.AddReport` of what
            was stored before it stopped; ``None`` otherwise.
    """

    report: AddReport | None

    def __init__(self, *args: object, report: AddReport | None = None) -> None:
        super().__init__(*args)
        self.report = report


class StoreUnavailableError(StoreError):
    """The vector store (a Chroma server) cannot be reached."""


class CollectionNotFoundError(StoreError):
    """No collection of that name exists (and it was not to be created).

    Attributes:
        name: the collection asked for.
        available: the names of the collections that do exist, sorted.
    """

    def __init__(self, name: str, available: list[str], where: str = "") -> None:
        names = ", ".join(repr(n) for n in available) or "none"
        super().__init__(f"no collection {name!r}{where} (collections: {names})")
        self.name = name
        self.available = available
        self.where = where

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.available, self.where), self.__dict__)


class StellaRagWarning(UserWarning):
    """Something works, but not the way you probably meant."""
