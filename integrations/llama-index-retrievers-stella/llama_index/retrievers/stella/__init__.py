"""LlamaIndex retriever over the whole chat history with the Stella dialogue encoder."""

from llama_index.retrievers.stella.base import StellaDialogueRetriever

__all__ = ["StellaDialogueRetriever"]
