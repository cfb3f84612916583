"""LlamaIndex retriever over the whole chat history with the Stella dialogue encoder."""

from llama_index.retrievers.stella.agents import (
    StellaContextBlock,
    StellaRetrieverTool,
    create_retriever_tool,
)
from llama_index.retrievers.stella.base import StellaDialogueRetriever
from llama_index.retrievers.stella.chat_engine import condense_plus_context_chat_engine

__all__ = [
    "StellaContextBlock",
    "StellaDialogueRetriever",
    "StellaRetrieverTool",
    "condense_plus_context_chat_engine",
    "create_retriever_tool",
]
