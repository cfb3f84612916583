"""Agent parts on real LlamaIndex agents, workflows and chat engines with mock LLMs.

After a chat about the Pixel 8, "And how much is it?" needs the Pixel 8's price; retrieval with
the last message alone finds other prices.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import chromadb
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.retrieval import RetrievalStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import BaseMemoryBlock, Memory
from llama_index.core.schema import TextNode
from llama_index.core.tools import FunctionTool
from llama_index.embeddings.stella import StellaEmbedding
from llama_index.retrievers.stella import (
    StellaContextBlock,
    StellaDialogueRetriever,
    condense_plus_context_chat_engine,
    create_retriever_tool,
)
from llama_index.vector_stores.chroma import ChromaVectorStore

from stella_rag import DialogueEncoder, SentenceEncoder

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
PIXEL_PRICE = PASSAGES["pixel-price"]
HISTORY = [
    ChatMessage(role="user", content="I'm thinking about buying a Pixel 8 phone."),
    ChatMessage(role="assistant", content="Good choice. What would you like to know?"),
    ChatMessage(role="user", content="Is its battery any good?"),
    ChatMessage(role="assistant", content="It lasts about a day."),
]
FOLLOW_UP = "And how much is it?"
CONDENSE = "Standalone question:"  # the end of LlamaIndex's condense prompt
# Pinned so that these tests of the plumbing do not move with the core's default strategy.
STRATEGY = "dialogue"


@pytest.fixture(scope="module")
def index(minilm: SentenceEncoder, tmp_path_factory: pytest.TempPathFactory) -> VectorStoreIndex:
    client = chromadb.PersistentClient(str(tmp_path_factory.mktemp("chroma")))
    collection = client.get_or_create_collection(f"agents-{uuid.uuid4().hex[:8]}")
    return VectorStoreIndex(
        [TextNode(id_=key, text=text) for key, text in PASSAGES.items()],
        storage_context=StorageContext.from_defaults(
            vector_store=ChromaVectorStore(chroma_collection=collection)
        ),
        embed_model=StellaEmbedding(encoder=minilm),
    )


@pytest.fixture(scope="module")
def retriever(index: VectorStoreIndex, minilm: SentenceEncoder) -> StellaDialogueRetriever:
    dialogue = DialogueEncoder(general=minilm, strategy=STRATEGY)
    return StellaDialogueRetriever.from_index(index, dialogue, similarity_top_k=2)


class LastMessageBlock(BaseMemoryBlock[str]):
    """The usual way: retrieve with the last user message only."""

    name: str = "retrieved_context"
    index: Any

    async def _aget(self, messages: list[ChatMessage] | None = None, **kwargs: Any) -> str:
        last = next(m for m in reversed(messages or []) if m.role == MessageRole.USER)
        nodes = await self.index.as_retriever(similarity_top_k=2).aretrieve(last.content or "")
        return "\n\n".join(n.node.get_content() for n in nodes)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        pass


class ScriptedLLM:
    """The reply function of a MockFunctionCallingLLM: plays back replies, keeps the input."""

    def __init__(self, *replies: ChatMessage) -> None:
        self.replies = iter(replies)
        self.calls: list[list[ChatMessage]] = []

    def __call__(self, messages: Any, **kwargs: Any) -> ChatMessage:
        self.calls.append(list(messages))
        return next(self.replies)

    def system(self, call: int = -1) -> str:
        return "\n".join(m.content or "" for m in self.calls[call] if m.role == MessageRole.SYSTEM)

    def llm(self) -> MockFunctionCallingLLM:
        return MockFunctionCallingLLM(response_generator=self)


def _reply(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def _tool_call(name: str, **kwargs: Any) -> ChatMessage:
    call = ToolCallBlock(tool_call_id=f"call-{name}", tool_name=name, tool_kwargs=kwargs)
    return ChatMessage(role="assistant", blocks=[call])


class RetrievalCounter(BaseEventHandler):
    """The query of every retrieval (LlamaIndex instrumentation)."""

    queries: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "RetrievalCounter"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, RetrievalStartEvent):
            self.queries.append(str(event.str_or_query_bundle))


@pytest.fixture
def retrievals() -> Iterator[list[str]]:
    counter = RetrievalCounter(queries=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(counter)
    yield counter.queries
    dispatcher.event_handlers.remove(counter)


# ------------------------------------------------------------------ memory block
async def test_function_agent_gets_the_passage_the_chat_points_to(
    retriever: StellaDialogueRetriever, index: VectorStoreIndex
) -> None:
    ours, usual = ScriptedLLM(_reply("It is $699.")), ScriptedLLM(_reply("It is $799."))
    block = StellaContextBlock(retriever=retriever)
    for script, memory_block in [(ours, block), (usual, LastMessageBlock(index=index))]:
        memory = Memory.from_defaults(chat_history=list(HISTORY), memory_blocks=[memory_block])
        agent = FunctionAgent(tools=[], llm=script.llm(), system_prompt="You sell phones.")
        response = await agent.run(FOLLOW_UP, memory=memory)
        assert str(response) in {"It is $699.", "It is $799."}

    assert PIXEL_PRICE in ours.system()
    assert "You sell phones." in ours.system()
    assert PIXEL_PRICE not in usual.system()
    assert "pixel-price" in [n.node.node_id for n in block.nodes]  # for citations


async def test_a_tool_call_keeps_the_context_of_the_user_turn(
    retriever: StellaDialogueRetriever, retrievals: list[str]
) -> None:
    def museum_info(topic: str) -> str:
        """Facts about the city museum."""
        return "The city museum opens at 9 am and closes at 5 pm, closed Mondays."

    script = ScriptedLLM(_tool_call("museum_info", topic="hours"), _reply("It is $699."))
    memory = Memory.from_defaults(
        chat_history=list(HISTORY), memory_blocks=[StellaContextBlock(retriever=retriever)]
    )
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(museum_info)], llm=script.llm())
    await agent.run(FOLLOW_UP, memory=memory)

    assert len(script.calls) == 2
    assert any(m.role == MessageRole.TOOL for m in script.calls[1])
    assert retrievals == [FOLLOW_UP]  # one retrieval for the user turn, not one per LLM call
    assert PIXEL_PRICE in script.system(0)
    assert script.system(1) == script.system(0)


async def test_agent_workflow_does_not_block_the_event_loop(
    retriever: StellaDialogueRetriever,
) -> None:
    encoder = retriever.dialogue_encoder
    encode = encoder.encode

    def slow_encode(dialogue: Any) -> Any:
        time.sleep(0.3)
        return encode(dialogue)

    script = ScriptedLLM(_reply("It is $699."))
    workflow = AgentWorkflow(agents=[FunctionAgent(name="seller", tools=[], llm=script.llm())])
    memory = Memory.from_defaults(
        chat_history=list(HISTORY), memory_blocks=[StellaContextBlock(retriever=retriever)]
    )
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    encoder.encode = slow_encode  # type: ignore[method-assign]
    try:
        beat = asyncio.create_task(heartbeat())
        await workflow.run(user_msg=FOLLOW_UP, memory=memory)
        done.set()
        await beat
    finally:
        del encoder.encode
    assert ticks >= 10, f"the event loop ran only {ticks} times during a 0.3 s encoding"
    assert PIXEL_PRICE in script.system()


# ------------------------------------------------------------------ bad input
async def test_block_edge_cases(retriever: StellaDialogueRetriever, retrievals: list[str]) -> None:
    block = StellaContextBlock(retriever=retriever, template="Passages:\n{context}")
    # No user message: nothing is retrieved and the block is empty (Memory leaves it out).
    assert await block.aget([]) == ""
    assert await block.aget([ChatMessage(role="system", content="Be brief.")]) == ""
    assert block.nodes == []
    # A last message that is a tool result: retrieval is for the user turn before it.
    after_tool = [
        *HISTORY,
        ChatMessage(role="user", content=FOLLOW_UP),
        _tool_call("museum_info"),
        ChatMessage(role="tool", content="The old stone bridge crosses the river."),
    ]
    text = await block.aget(after_tool)
    assert text.startswith("Passages:\n")
    assert PIXEL_PRICE in text
    assert retrievals == [FOLLOW_UP]
    # The user message repeated by the agent after tool calls is the same turn: no new search.
    assert await block.aget([*after_tool[:5], ChatMessage(role="user", content=FOLLOW_UP)]) == text
    assert retrievals == [FOLLOW_UP]
    # Content blocks: the text blocks are read; a message with no text retrieves nothing.
    blocks = ChatMessage(
        role="user",
        blocks=[TextBlock(text=FOLLOW_UP), ImageBlock(url="https://example.com/pixel.png")],
    )
    assert PIXEL_PRICE in await block.aget([*HISTORY, blocks])
    image_only = ChatMessage(role="user", blocks=[ImageBlock(url="https://example.com/a.png")])
    assert await block.aget([*HISTORY, image_only]) == ""
    assert block.nodes == []


def test_memory_get_works_sync(retriever: StellaDialogueRetriever) -> None:
    memory = Memory.from_defaults(
        chat_history=[*HISTORY, ChatMessage(role="user", content=FOLLOW_UP)],
        memory_blocks=[StellaContextBlock(retriever=retriever)],
    )
    messages = memory.get()
    assert messages[0].role == MessageRole.SYSTEM
    assert PIXEL_PRICE in (messages[0].content or "")
    assert [m.content for m in messages[1:]] == [m.content for m in memory.get_all()]


def test_bad_arguments_are_named(retriever: StellaDialogueRetriever) -> None:
    with pytest.raises(ValueError, match=r"'\{context\}' placeholder, got 'Passages: \{docs\}'"):
        StellaContextBlock(retriever=retriever, template="Passages: {docs}")
    with pytest.raises(TypeError, match="must be a StellaDialogueRetriever, got str"):
        StellaContextBlock(retriever="retriever")
    with pytest.raises(TypeError, match="must be a StellaDialogueRetriever, got str"):
        create_retriever_tool("retriever")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="skip_condense= does not apply"):
        condense_plus_context_chat_engine(retriever, MockLLM(), skip_condense=False)


# ------------------------------------------------------------------ tool
async def test_retriever_tool_searches_with_the_llms_query(
    retriever: StellaDialogueRetriever,
) -> None:
    tool = create_retriever_tool(retriever.with_memory(Memory.from_defaults()))
    assert tool.metadata.name == "retrieve_context"
    assert list(tool.metadata.get_parameters_dict()["properties"]) == ["query"]
    script = ScriptedLLM(_tool_call("retrieve_context", query="Pixel 8 price"), _reply("$699."))
    agent = FunctionAgent(tools=[tool], llm=script.llm())
    handler = agent.run("How much is the Pixel 8?")
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    await handler

    (result,) = results
    assert PIXEL_PRICE in result.tool_output.content
    assert "pixel-price" in [n.node.node_id for n in result.tool_output.raw_output]
    assert "pixel-price" in [n.node.node_id for n in tool.call(query="Pixel 8 price").raw_output]


# ------------------------------------------------------------------ chat engine
def test_condense_plus_context_engine_makes_one_llm_call_per_turn(
    retriever: StellaDialogueRetriever, prompts: list[str], retrievals: list[str]
) -> None:
    engine = condense_plus_context_chat_engine(retriever, MockLLM(max_tokens=8))
    for message in [HISTORY[0].content, HISTORY[2].content, FOLLOW_UP]:
        response = engine.chat(message or "")
    assert prompts and not any(CONDENSE in prompt for prompt in prompts)
    assert retrievals == [HISTORY[0].content, HISTORY[2].content, FOLLOW_UP]
    assert PIXEL_PRICE in prompts[-1]
    assert "pixel-price" in [n.node.node_id for n in response.source_nodes]
    assert len(engine.chat_history) == 6


async def test_condense_plus_context_engine_async(
    retriever: StellaDialogueRetriever, prompts: list[str]
) -> None:
    engine = condense_plus_context_chat_engine(
        retriever, MockLLM(max_tokens=8), chat_history=list(HISTORY)
    )
    response = await engine.achat(FOLLOW_UP)
    assert prompts and not any(CONDENSE in prompt for prompt in prompts)
    assert "pixel-price" in [n.node.node_id for n in response.source_nodes]

    # LlamaIndex's engine as usual makes the condense call this test looks for.
    usual = CondensePlusContextChatEngine.from_defaults(
        retriever=retriever, llm=MockLLM(max_tokens=8), chat_history=list(HISTORY)
    )
    await usual.achat(FOLLOW_UP)
    assert any(CONDENSE in prompt for prompt in prompts)
