"""A retriever tool for agentic RAG: the model writes its own query."""

from __future__ import annotations

from typing import Literal

from langchain_core.prompts import BasePromptTemplate
from langchain_core.tools import StructuredTool, create_retriever_tool

from langchain_stella.retrievers import StellaDialogueRetriever

__all__ = ["create_stella_retriever_tool"]

DEFAULT_TOOL_DESCRIPTION = (
    "Search the knowledge base for passages that help answer a question. "
    "Write the query as a standalone question."
)


def create_stella_retriever_tool(
    retriever: StellaDialogueRetriever,
    name: str = "retrieve_context",
    description: str = DEFAULT_TOOL_DESCRIPTION,
    *,
    document_prompt: BasePromptTemplate[str] | None = None,
    document_separator: str = "\n\n",
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact",
) -> StructuredTool:
    """A tool that searches with the query the model writes, sync and async.

    LangChain's ``create_retriever_tool`` over the retriever: the query is one user turn.
    By default the tool returns ``(content, documents)``, so the ``ToolMessage`` carries the
    documents as its ``artifact``, for citations, as in LangChain's agentic RAG guide.

    Args:
        retriever: the retriever (its ``k`` and ``filter`` apply).
        name: the tool's name, as the model sees it.
        description: what the tool does, as the model sees it.
        document_prompt: how each document is written (default ``"{page_content}"``).
        document_separator: what goes between two documents.
        response_format: ``"content_and_artifact"`` (documents as the artifact) or
            ``"content"``.
    """
    if not isinstance(retriever, StellaDialogueRetriever):
        raise TypeError(
            f"retriever must be a StellaDialogueRetriever, got {type(retriever).__name__}"
        )
    return create_retriever_tool(
        retriever,
        name,
        description,
        document_prompt=document_prompt,
        document_separator=document_separator,
        response_format=response_format,
    )
