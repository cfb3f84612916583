"""History-aware context for LlamaIndex agents (``FunctionAgent``, ``AgentWorkflow``, ...).

- :class:`StellaContextBlock`: a ``Memory`` block that, each time the agent reads its memory
  (before each LLM call), retrieves with the whole chat and puts the passages into the
  system message.
- :func:`create_retriever_tool`: a tool that searches with the query the LLM writes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import BaseModel, Field, PrivateAttr, field_validator
from llama_index.core.memory import BaseMemoryBlock
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.tools import RetrieverTool, ToolMetadata, ToolOutput
from llama_index.retrievers.stella.base import StellaDialogueRetriever

__all__ = ["StellaContextBlock", "StellaRetrieverTool", "create_retriever_tool"]

DEFAULT_TOOL_NAME = "retrieve_context"
DEFAULT_TOOL_DESCRIPTION = (
    "Search the knowledge base for passages that help answer a question. "
    "Write the query as a standalone question."
)


def _standalone(retriever: StellaDialogueRetriever) -> StellaDialogueRetriever:
    """A copy of the retriever that reads no history: the query is the whole dialogue."""
    if not isinstance(retriever, StellaDialogueRetriever):
        raise TypeError(
            f"retriever must be a StellaDialogueRetriever, got {type(retriever).__name__}"
        )
    alone = copy.copy(retriever)
    alone.memory = None
    alone.chat_history = None
    return alone


def _latest_user_turn(
    messages: Sequence[ChatMessage],
) -> tuple[list[ChatMessage], str] | None:
    """The chat before the latest user message, and that message's text.

    Tool calls and tool results after the latest user message are left out. Agents read
    their memory with the user message added once more (``memory.aget(input=...)`` after tool
    calls); the repeated message is counted once.
    """
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == MessageRole.USER:
            text = messages[index].content or ""
            history = list(messages[:index])
            while history and history[-1].role == MessageRole.USER and history[-1].content == text:
                history.pop()
            return history, text
    return None


class StellaContextBlock(BaseMemoryBlock[str]):
    """A ``Memory`` block with the passages retrieved for the chat in that memory.

    LlamaIndex agents read their memory before each LLM call; this block then retrieves with
    the whole chat (the memory's messages up to the latest user message) through the Stella
    dialogue retriever, with no LLM call to condense the chat, and the memory puts the
    passages into the system message (``Memory.insert_method``). Retrieval follows the latest
    user message: the LLM calls that follow tool calls in the same turn get the same passages
    without a new search, and a tool result is never a query.

    With no user message in the memory, or a user message with no text, the block is empty
    (the memory leaves it out). Content blocks: the text blocks of each message are read.

    One block belongs to one ``Memory`` (one chat): ``nodes`` are that chat's latest passages.

    Args:
        retriever: the retriever (its ``similarity_top_k`` and ``where`` apply; a memory or
            chat history bound to it is not read: the block reads the memory it is in).
        name: the block's name, the tag around the passages in the system message.
        template: the block's text; ``{context}`` is replaced by the passages.
        document_separator: what goes between two passages.

    Example:
        .. code-block:: python

            from llama_index.core.agent.workflow import FunctionAgent
            from llama_index.core.memory import Memory

            memory = Memory.from_defaults(memory_blocks=[StellaContextBlock(retriever=retriever)])
            agent = FunctionAgent(tools=[...], llm=llm)
            await agent.run("And how much is it?", memory=memory)
    """

    name: str = Field(default="retrieved_context", description="The name of the memory block.")
    retriever: Any = Field(
        description="The StellaDialogueRetriever that retrieves passages.", exclude=True
    )
    template: str = Field(default="{context}", description="The block's text, with {context}.")
    document_separator: str = Field(default="\n\n", description="Between two passages.")

    _nodes: list[NodeWithScore] = PrivateAttr(default_factory=list)
    _key: tuple[tuple[str, str], ...] | None = PrivateAttr(default=None)

    @field_validator("retriever")
    @classmethod
    def _check_retriever(cls, value: Any) -> StellaDialogueRetriever:
        return _standalone(value)

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{context}" not in value:
            raise ValueError(f"template must contain a '{{context}}' placeholder, got {value!r}")
        return value

    @property
    def nodes(self) -> list[NodeWithScore]:
        """The passages of the latest user turn (for citations); ``[]`` before any."""
        return list(self._nodes)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        turn = _latest_user_turn(messages or [])
        if turn is None or not turn[1].strip():
            self._nodes, self._key = [], None
            return ""
        history, text = turn
        key = tuple((m.role.value, m.content or "") for m in [*history, ChatMessage(content=text)])
        if key != self._key:
            bound = copy.copy(self.retriever)
            bound.chat_history = history
            self._nodes = await bound.aretrieve(QueryBundle(text))
            self._key = key
        if not self._nodes:
            return ""
        passages = self.document_separator.join(
            n.node.get_content(MetadataMode.LLM) for n in self._nodes
        )
        return self.template.replace("{context}", passages)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Nothing to keep: the passages are retrieved again for the chat at each read."""


class _Query(BaseModel):
    query: str = Field(description="A standalone question to search the knowledge base with.")


class StellaRetrieverTool(RetrieverTool):
    """LlamaIndex's ``RetrieverTool`` called with ``query=``, the query the LLM writes.

    ``ToolOutput.raw_output`` holds the ``NodeWithScore`` list, for citations.
    """

    def call(self, query: str) -> ToolOutput:
        """Search with ``query``."""
        nodes = self.retriever.retrieve(query)
        nodes = self._apply_node_postprocessors(nodes, QueryBundle(query))
        return self._output(query, nodes)

    async def acall(self, query: str) -> ToolOutput:
        """Like :meth:`call`, without blocking the event loop."""
        nodes = await self.retriever.aretrieve(query)
        nodes = await self._async_apply_node_postprocessors(nodes, QueryBundle(query))
        return self._output(query, nodes)

    def _output(self, query: str, nodes: list[NodeWithScore]) -> ToolOutput:
        content = "\n\n".join(n.node.get_content(MetadataMode.LLM) for n in nodes)
        return ToolOutput(
            content=content,
            tool_name=self.metadata.get_name(),
            raw_input={"query": query},
            raw_output=nodes,
        )


def create_retriever_tool(
    retriever: StellaDialogueRetriever,
    name: str = DEFAULT_TOOL_NAME,
    description: str = DEFAULT_TOOL_DESCRIPTION,
    *,
    node_postprocessors: list[BaseNodePostprocessor] | None = None,
) -> StellaRetrieverTool:
    """A tool for ``FunctionAgent`` / ``AgentWorkflow`` that searches with the LLM's query.

    The query is one user turn: a memory or chat history bound to the retriever is not read.

    Args:
        retriever: the retriever (its ``similarity_top_k`` and ``where`` apply).
        name: the tool's name, as the LLM sees it.
        description: what the tool does, as the LLM sees it.
        node_postprocessors: applied to the retrieved nodes.
    """
    return StellaRetrieverTool(
        retriever=_standalone(retriever),
        metadata=ToolMetadata(name=name, description=description, fn_schema=_Query),
        node_postprocessors=node_postprocessors,
    )
