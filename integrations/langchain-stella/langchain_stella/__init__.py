"""LangChain integration for stella-rag: Stella embeddings, a dialogue-encoder retriever, and
its agent parts (a ``create_agent`` middleware, a retriever tool, a LangGraph node)."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from langchain_stella.embeddings import StellaEmbeddings
from langchain_stella.nodes import create_retrieval_node
from langchain_stella.retrievers import StellaDialogueRetriever
from langchain_stella.text_splitters import StellaTextSplitter
from langchain_stella.tools import create_stella_retriever_tool

if TYPE_CHECKING:
    from langchain_stella.middleware import StellaContextMiddleware

try:
    __version__ = metadata.version(__package__ or "langchain_stella")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = ""

__all__ = [
    "StellaContextMiddleware",
    "StellaDialogueRetriever",
    "StellaEmbeddings",
    "StellaTextSplitter",
    "__version__",
    "create_retrieval_node",
    "create_stella_retriever_tool",
]


def __getattr__(name: str) -> Any:
    # The middleware needs langchain (the agents extra); importing it is deferred to first use.
    if name == "StellaContextMiddleware":
        from langchain_stella.middleware import StellaContextMiddleware

        return StellaContextMiddleware
    raise AttributeError(f"module 'langchain_stella' has no attribute {name!r}")
