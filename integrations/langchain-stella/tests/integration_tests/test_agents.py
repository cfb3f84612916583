"""The agent parts on real LangChain v1 / LangGraph with fake chat models over real Chroma.

The scenario of LangChain's RAG guide: ``create_agent`` with a middleware that puts retrieved
passages into the system message. After a chat about the Pixel 8, "And how much is it?" needs
the Pixel 8's price; the guide's middleware retrieves with the last message only and misses it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, dynamic_prompt
from langchain_chroma import Chroma
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_stella import (
    StellaContextMiddleware,
    StellaDialogueRetriever,
    StellaEmbeddings,
    create_retrieval_node,
    create_stella_retriever_tool,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

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
FOLLOW_UP = "And how much is it?"
CHAT: list[BaseMessage] = [
    HumanMessage("I'm thinking about buying a Pixel 8 phone."),
    AIMessage("Good choice. What would you like to know?"),
    HumanMessage("Is its battery any good?"),
    AIMessage("It lasts about a day."),
    HumanMessage(FOLLOW_UP),
]
# The Stella card's way to encode a chat, pinned so that these tests of the plumbing do not
# move with the tuning of the core's default strategy (the examples run with the default).
STRATEGY = "dialogue"


class PromptRecorder(BaseCallbackHandler):
    """The messages each chat model call was given."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.prompts.extend(messages)

    def system(self, call: int = -1) -> str:
        first = self.prompts[call][0]
        return first.text if first.type == "system" else ""


class FakeToolCallingModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools (it plays back its scripted messages)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeToolCallingModel:
        return self


def _model(*replies: AIMessage | str) -> FakeToolCallingModel:
    return FakeToolCallingModel(messages=iter(replies))


@pytest.fixture(scope="module")
def vectorstore(tmp_path_factory: pytest.TempPathFactory) -> Chroma:
    """The passages in a persistent Chroma collection, embedded by minilm."""
    store = Chroma(
        collection_name=f"agents-{uuid.uuid4().hex[:8]}",
        embedding_function=StellaEmbeddings(model_name="minilm", device="cpu"),
        persist_directory=str(tmp_path_factory.mktemp("chroma")),
        collection_metadata={"hnsw:space": "cosine"},
    )
    store.add_texts(list(PASSAGES.values()), ids=list(PASSAGES))
    return store


@pytest.fixture(scope="module")
def retriever(vectorstore: Chroma) -> StellaDialogueRetriever:
    return StellaDialogueRetriever(
        vectorstore=vectorstore, dialogue_model=None, strategy=STRATEGY, k=2
    )


def _last_message_middleware(vectorstore: Chroma) -> Any:
    """The middleware of LangChain's RAG guide, which retrieves with the last message only."""

    @dynamic_prompt
    def prompt_with_context(request: ModelRequest) -> str:
        last_query = request.state["messages"][-1].text
        retrieved_docs = vectorstore.similarity_search(last_query, k=2)
        docs_content = "\n\n".join(doc.page_content for doc in retrieved_docs)
        return (
            "You are a helpful assistant. Use the following context in your response:"
            f"\n\n{docs_content}"
        )

    return prompt_with_context


def _spy(retriever: StellaDialogueRetriever, delay: float = 0.0) -> list[str]:
    """Records the last turn of every dialogue the core retriever searches with."""
    core = retriever.conversational_retriever
    original = type(core).retrieve
    queries: list[str] = []

    def retrieve(turns: Any, k: Any = None, where: Any = None) -> Any:
        queries.append(turns if isinstance(turns, str) else list(turns)[-1].text)
        time.sleep(delay)
        return original(core, turns, k, where)

    core.retrieve = retrieve  # type: ignore[method-assign]
    return queries


@pytest.fixture
def spied(retriever: StellaDialogueRetriever) -> Any:
    core = retriever.conversational_retriever
    yield lambda delay=0.0: _spy(retriever, delay)
    core.__dict__.pop("retrieve", None)


# ------------------------------------------------------------------ middleware
def test_follow_up_gets_the_passage_the_chat_points_to_and_the_guide_does_not(
    retriever: StellaDialogueRetriever, vectorstore: Chroma
) -> None:
    ours, guide = PromptRecorder(), PromptRecorder()
    agent = create_agent(
        _model("It is $699."), tools=[], middleware=[StellaContextMiddleware(retriever)]
    )
    baseline = create_agent(
        _model("It is $799."), tools=[], middleware=[_last_message_middleware(vectorstore)]
    )

    result = agent.invoke({"messages": CHAT}, {"callbacks": [ours]})
    baseline.invoke({"messages": CHAT}, {"callbacks": [guide]})

    assert PIXEL_PRICE in ours.system()
    assert ours.system().startswith("Use the following context in your response:")
    assert PIXEL_PRICE not in guide.system()
    # The documents the model was given are in the state, for citations.
    assert "pixel-price" in [doc.id for doc in result["context"]]
    assert all(isinstance(doc, Document) for doc in result["context"])
    assert result["messages"][-1].text == "It is $699."


async def test_async_follow_up_does_not_block_the_event_loop(
    retriever: StellaDialogueRetriever, vectorstore: Chroma, spied: Any
) -> None:
    queries = spied(0.3)  # a slow search: the loop must keep running meanwhile
    ours, guide = PromptRecorder(), PromptRecorder()
    agent = create_agent(
        _model("It is $699."), tools=[], middleware=[StellaContextMiddleware(retriever)]
    )
    baseline = create_agent(
        _model("It is $799."), tools=[], middleware=[_last_message_middleware(vectorstore)]
    )
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    loop_thread = threading.get_ident()
    result = await agent.ainvoke({"messages": CHAT}, {"callbacks": [ours]})
    done.set()
    await beat
    await baseline.ainvoke({"messages": CHAT}, {"callbacks": [guide]})

    assert queries == [FOLLOW_UP]
    assert ticks >= 10, f"the event loop ran only {ticks} times during a 0.3 s search"
    assert threading.get_ident() == loop_thread
    assert PIXEL_PRICE in ours.system()
    assert PIXEL_PRICE not in guide.system()
    assert "pixel-price" in [doc.id for doc in result["context"]]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tool_call_keeps_the_context_of_the_user_turn(
    retriever: StellaDialogueRetriever, spied: Any, mode: str
) -> None:
    @tool
    def museum_info(topic: str) -> str:
        """Facts about the city museum."""
        return "The city museum opens at 9 am and closes at 5 pm, closed Mondays."

    calls = AIMessage("", tool_calls=[{"name": "museum_info", "args": {"topic": "x"}, "id": "1"}])
    agent = create_agent(
        _model(calls, "It is $699."),
        tools=[museum_info],
        middleware=[StellaContextMiddleware(retriever)],
    )
    queries = spied()
    recorder = PromptRecorder()
    run = {"messages": CHAT}, {"callbacks": [recorder]}
    result = agent.invoke(*run) if mode == "sync" else await agent.ainvoke(*run)

    assert len(recorder.prompts) == 2
    assert isinstance(recorder.prompts[1][-1], ToolMessage)
    # One retrieval for the user turn; the model call after the tool gets the same passages.
    assert queries == [FOLLOW_UP]
    assert PIXEL_PRICE in recorder.system(0)
    assert recorder.system(1) == recorder.system(0)
    assert "pixel-price" in [doc.id for doc in result["context"]]


def test_each_new_user_turn_of_a_thread_retrieves_again(
    retriever: StellaDialogueRetriever, spied: Any
) -> None:
    agent = create_agent(
        _model("Good choice.", "It lasts about a day.", "It is $699."),
        tools=[],
        middleware=[StellaContextMiddleware(retriever)],
        checkpointer=InMemorySaver(),
    )
    queries = spied()
    thread = {"configurable": {"thread_id": "t1"}}
    contexts = []
    for message in [CHAT[0], CHAT[2], CHAT[4]]:
        result = agent.invoke({"messages": [message]}, thread)
        contexts.append([doc.id for doc in result["context"]])

    assert queries == [CHAT[0].text, CHAT[2].text, FOLLOW_UP]
    assert "pixel-price" in contexts[2]


def test_the_system_prompt_of_the_agent_comes_first(retriever: StellaDialogueRetriever) -> None:
    recorder = PromptRecorder()
    agent = create_agent(
        _model("It is $699."),
        tools=[],
        system_prompt="You sell phones.",
        middleware=[StellaContextMiddleware(retriever, template="Passages:\n{context}\nEnd.")],
    )
    agent.invoke({"messages": CHAT}, {"callbacks": [recorder]})
    system = recorder.system()
    assert system.startswith("You sell phones.\n\nPassages:\n")
    assert system.endswith("\nEnd.")
    assert PIXEL_PRICE in system


# ------------------------------------------------------------------ bad input
def test_no_messages_no_retrieval_and_the_model_call_is_unchanged(
    retriever: StellaDialogueRetriever, spied: Any
) -> None:
    queries = spied()
    recorder = PromptRecorder()
    agent = create_agent(
        _model("Hello."),
        tools=[],
        system_prompt="You sell phones.",
        middleware=[StellaContextMiddleware(retriever)],
    )
    result = agent.invoke({"messages": []}, {"callbacks": [recorder]})
    assert queries == []
    assert result["context"] == []
    assert recorder.system() == "You sell phones."


def test_a_last_message_that_is_a_tool_result_retrieves_for_the_user_turn_before_it(
    retriever: StellaDialogueRetriever, spied: Any
) -> None:
    queries = spied()
    messages = [
        *CHAT,
        AIMessage("", tool_calls=[{"name": "museum_info", "args": {}, "id": "7"}]),
        ToolMessage("The old stone bridge crosses the river.", tool_call_id="7"),
    ]
    recorder = PromptRecorder()
    agent = create_agent(
        _model("It is $699."), tools=[], middleware=[StellaContextMiddleware(retriever)]
    )
    result = agent.invoke({"messages": messages}, {"callbacks": [recorder]})
    assert queries == [FOLLOW_UP]
    assert "pixel-price" in [doc.id for doc in result["context"]]
    assert PIXEL_PRICE in recorder.system()


def test_content_blocks_are_read_for_their_text(
    retriever: StellaDialogueRetriever, spied: Any
) -> None:
    queries = spied()
    blocks = HumanMessage(
        content=[
            {"type": "text", "text": FOLLOW_UP},
            {"type": "image", "url": "https://example.com/pixel.png"},
        ]
    )
    agent = create_agent(
        _model("It is $699."), tools=[], middleware=[StellaContextMiddleware(retriever)]
    )
    result = agent.invoke({"messages": [*CHAT[:-1], blocks]})
    assert queries == [FOLLOW_UP]
    assert "pixel-price" in [doc.id for doc in result["context"]]


def test_a_user_message_without_text_retrieves_nothing(
    retriever: StellaDialogueRetriever,
) -> None:
    image_only = HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])
    recorder = PromptRecorder()
    agent = create_agent(
        _model("Nice picture."),
        tools=[],
        system_prompt="You sell phones.",
        middleware=[StellaContextMiddleware(retriever)],
    )
    result = agent.invoke({"messages": [*CHAT[:-1], image_only]}, {"callbacks": [recorder]})
    assert result["context"] == []
    assert recorder.system() == "You sell phones."


def test_bad_arguments_are_named(retriever: StellaDialogueRetriever) -> None:
    with pytest.raises(ValueError, match=r"'\{context\}' placeholder, got 'Passages: \{docs\}'"):
        StellaContextMiddleware(retriever, template="Passages: {docs}")
    with pytest.raises(TypeError, match="must be a StellaDialogueRetriever, got str"):
        StellaContextMiddleware("retriever")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a StellaDialogueRetriever, got str"):
        create_stella_retriever_tool("retriever")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a StellaDialogueRetriever, got str"):
        create_retrieval_node("retriever")  # type: ignore[arg-type]


# ------------------------------------------------------------------ retriever tool
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retriever_tool_searches_with_the_models_query(
    retriever: StellaDialogueRetriever, mode: str
) -> None:
    retrieve_context = create_stella_retriever_tool(retriever)
    call = {"name": "retrieve_context", "args": {"query": "Pixel 8 price"}, "id": "c1"}
    agent = create_agent(
        _model(AIMessage("", tool_calls=[call]), "It is $699."), tools=[retrieve_context]
    )
    run = {"messages": [HumanMessage("How much is the Pixel 8?")]}
    result = agent.invoke(run) if mode == "sync" else await agent.ainvoke(run)

    tool_message = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert PIXEL_PRICE in tool_message.text
    assert "pixel-price" in [doc.id for doc in tool_message.artifact]  # for citations
    assert retrieve_context.name == "retrieve_context"
    assert "query" in retrieve_context.args


# ------------------------------------------------------------------ LangGraph node
class RagState(MessagesState):
    context: list[Document]


def _graph(retriever: StellaDialogueRetriever, answer: Callable[[RagState], dict[str, Any]]) -> Any:
    graph = StateGraph(RagState)
    graph.add_node("retrieve", create_retrieval_node(retriever))
    graph.add_node("generate", answer)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "generate")
    graph.add_edge("generate", END)
    return graph.compile()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_retrieval_node_in_a_hand_built_graph(
    retriever: StellaDialogueRetriever, mode: str
) -> None:
    seen: list[list[Document]] = []

    def generate(state: RagState) -> dict[str, Any]:
        seen.append(state["context"])
        return {"messages": [AIMessage(state["context"][0].page_content)]}

    app = _graph(retriever, generate)
    run = {"messages": CHAT}
    result = app.invoke(run) if mode == "sync" else await app.ainvoke(run)
    assert "pixel-price" in [doc.id for doc in result["context"]]
    assert seen[0] == result["context"]


def test_retrieval_node_edge_cases(retriever: StellaDialogueRetriever) -> None:
    node = create_retrieval_node(retriever, messages_key="chat", documents_key="docs", k=1)
    assert node.invoke({"chat": []}) == {"docs": []}
    after_tool = [
        *CHAT,
        AIMessage("", tool_calls=[{"name": "t", "args": {}, "id": "9"}]),
        ToolMessage("The old stone bridge crosses the river.", tool_call_id="9"),
    ]
    assert [doc.id for doc in node.invoke({"chat": after_tool})["docs"]] == [
        doc.id for doc in node.invoke({"chat": CHAT})["docs"]
    ]
    assert len(node.invoke({"chat": CHAT})["docs"]) == 1
    with pytest.raises(KeyError, match="no 'chat' key"):
        create_retrieval_node(retriever, messages_key="chat").invoke({"messages": CHAT})


def test_the_package_imports_without_langchain_installed(tmp_path: Path) -> None:
    """Without the agents extra, only the middleware is missing, with the pip hint."""
    import subprocess
    import sys

    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'langchain' or name.startswith('langchain.'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    code = (
        "import langchain_stella as ls\n"
        "assert ls.create_stella_retriever_tool and ls.create_retrieval_node\n"
        "try:\n"
        "    ls.StellaContextMiddleware\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'pip install "langchain-stella[agents]"' in out.stdout
