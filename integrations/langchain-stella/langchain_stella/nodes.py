"""A retrieval node for hand-built LangGraph graphs: messages in, documents out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_stella._turns import latest_user_turn
from langchain_stella.retrievers import StellaDialogueRetriever
from stella_rag import EmptyDialogueError

__all__ = ["create_retrieval_node"]


def create_retrieval_node(
    retriever: StellaDialogueRetriever,
    *,
    messages_key: str = "messages",
    documents_key: str = "context",
    k: int | None = None,
    filter: dict[str, Any] | None = None,
) -> RunnableLambda[Mapping[str, Any], dict[str, list[Document]]]:
    """A graph node that retrieves with the whole chat in ``state[messages_key]``.

    The node returns ``{documents_key: documents}``. It retrieves for the latest user message,
    with the chat up to it (tool results after it are not a query). With no user message, or
    one with no text, it returns no documents. It runs sync (``invoke``) and async
    (``ainvoke``, the search in a worker thread), as LangGraph calls it.

    Args:
        retriever: the retriever; its ``k`` and ``filter`` apply unless given here.
        messages_key: the state key of the messages.
        documents_key: the state key the documents are written to.
        k: how many documents to retrieve.
        filter: a Chroma ``where`` filter.

    Example:
        .. code-block:: python

            graph = StateGraph(State)
            graph.add_node("retrieve", create_retrieval_node(retriever))
            graph.add_node("generate", generate)  # reads state["context"]
    """
    if not isinstance(retriever, StellaDialogueRetriever):
        raise TypeError(
            f"retriever must be a StellaDialogueRetriever, got {type(retriever).__name__}"
        )
    options: dict[str, Any] = {}
    if k is not None:
        options["k"] = k
    if filter is not None:
        options["filter"] = filter

    def _dialogue(state: Mapping[str, Any]) -> Any:
        if messages_key not in state:
            raise KeyError(
                f"the state has no {messages_key!r} key (keys: {sorted(map(str, state))}); "
                "pass messages_key= to name the key of the messages"
            )
        turn = latest_user_turn(state[messages_key])
        return None if turn is None else turn.dialogue

    def retrieve(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, list[Document]]:
        dialogue = _dialogue(state)
        if dialogue is None:
            return {documents_key: []}
        try:
            return {documents_key: retriever.invoke(dialogue, config, **options)}
        except EmptyDialogueError:
            return {documents_key: []}

    async def aretrieve(
        state: Mapping[str, Any], config: RunnableConfig
    ) -> dict[str, list[Document]]:
        dialogue = _dialogue(state)
        if dialogue is None:
            return {documents_key: []}
        try:
            return {documents_key: await retriever.ainvoke(dialogue, config, **options)}
        except EmptyDialogueError:
            return {documents_key: []}

    return RunnableLambda(retrieve, afunc=aretrieve, name="retrieve")
