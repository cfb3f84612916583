"""LangChain integration for stella-rag: Stella embeddings and a dialogue-encoder retriever."""

from __future__ import annotations

from importlib import metadata

from langchain_stella.embeddings import StellaEmbeddings
from langchain_stella.retrievers import StellaDialogueRetriever

try:
    __version__ = metadata.version(__package__ or "langchain_stella")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = ""

__all__ = ["StellaDialogueRetriever", "StellaEmbeddings", "__version__"]
