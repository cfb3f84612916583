"""A LlamaIndex ``FunctionAgent`` whose context is retrieved with the whole chat in its memory.

``StellaContextBlock`` is a ``Memory`` block: each time the agent reads its memory (before
each LLM call), the block retrieves with the whole chat through the Stella dialogue retriever,
and the memory puts the passages into the system message. There is no LLM call to condense
the chat. After a chat about the Pixel 8, "And how much is it?" on its own could be about any
product; the block retrieves the Pixel 8's price. For comparison, the script also retrieves
with the last message only, as a plain ``index.as_retriever()`` does.

Runs offline: ``minilm`` (all-MiniLM-L6-v2, bundled) embeds, LlamaIndex's
``MockFunctionCallingLLM`` answers with a scripted reply and shows what it was given. With the
Stella models, use ``StellaEmbedding("stella-large-zh")`` and
``dialogue_encoder="stella-dialogue-zh"``.

    pip install -e integrations/llama-index-embeddings-stella \
        -e integrations/llama-index-retrievers-stella
    python examples/llamaindex_agent_rag.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import chromadb
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import Memory
from llama_index.core.schema import TextNode
from llama_index.embeddings.stella import StellaEmbedding
from llama_index.retrievers.stella import StellaContextBlock, StellaDialogueRetriever
from llama_index.vector_stores.chroma import ChromaVectorStore

PASSAGES = {
    "pixel-price": "The Pixel 8 costs $699 in the Google Store.",
    "iphone-price": "The iPhone 15 costs $799 at Apple.",
    "galaxy-price": "The Galaxy S24 costs $799 from Samsung.",
    "pixel-battery": "The Pixel 8 battery lasts about 24 hours on a charge.",
    "iphone-battery": "The iPhone 15 battery lasts about 20 hours of video playback.",
    "museum-hours": "The city museum opens at 9 am and closes at 5 pm, closed Mondays.",
    "museum-ticket": "A museum ticket costs $15 for adults and is free for children.",
    "bridge": "The old stone bridge crosses the river near the city center.",
    "bus-ticket": "A single bus ticket costs $2.50 and is valid for 90 minutes.",
    "headphones-price": "The Sony WH-1000XM5 headphones cost $399.",
}

HISTORY = [
    ChatMessage(role="user", content="I'm thinking about buying a Pixel 8 phone."),
    ChatMessage(role="assistant", content="Good choice. What would you like to know?"),
    ChatMessage(role="user", content="Is its battery any good?"),
    ChatMessage(role="assistant", content="It lasts about a day."),
]
FOLLOW_UP = "And how much is it?"


class ScriptedLLM:
    """Replies with a fixed answer and keeps the system messages it was given."""

    def __init__(self) -> None:
        self.system: list[str] = []

    def __call__(self, messages: Any, **kwargs: Any) -> ChatMessage:
        self.system.append(
            "\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)
        )
        return ChatMessage(role="assistant", content="(scripted reply)")


async def main() -> None:
    collection = chromadb.EphemeralClient().get_or_create_collection("llamaindex-agent-rag")
    index = VectorStoreIndex(
        [TextNode(id_=key, text=text) for key, text in PASSAGES.items()],
        storage_context=StorageContext.from_defaults(
            vector_store=ChromaVectorStore(chroma_collection=collection)
        ),
        embed_model=StellaEmbedding("minilm", device="cpu"),
    )
    retriever = StellaDialogueRetriever.from_index(index, similarity_top_k=2)

    context = StellaContextBlock(retriever=retriever)
    memory = Memory.from_defaults(chat_history=list(HISTORY), memory_blocks=[context])
    script = ScriptedLLM()
    agent = FunctionAgent(
        tools=[],
        llm=MockFunctionCallingLLM(response_generator=script),
        system_prompt="You are a helpful assistant.",
    )
    await agent.run(FOLLOW_UP, memory=memory)

    for message in [*HISTORY, ChatMessage(role="user", content=FOLLOW_UP)]:
        print(f"{message.role.value}: {message.content}")
    print()
    ours = [n.node.node_id for n in context.nodes]
    print(f"stella-rag (whole chat): {ours}")
    for node_id in ours:
        print(f"  {node_id}: {PASSAGES[node_id]}")
    last = await index.as_retriever(similarity_top_k=2).aretrieve(FOLLOW_UP)
    print(f"last message only: {[n.node.node_id for n in last]}")
    for n in last:
        print(f"  {n.node.node_id}: {n.node.get_content()}")
    print("\nsystem messages given to the LLM:")
    print(script.system[-1])


if __name__ == "__main__":
    asyncio.run(main())
