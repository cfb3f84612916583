"""A multi-turn RAG chat in LangChain where retrieval reads the whole chat, with no LLM rewrite.

Runs offline: the documents and the chat are embedded by ``minilm`` (all-MiniLM-L6-v2, bundled in
``stella-rag[offline]``), the collection is an in-memory ``langchain_chroma.Chroma``, and the chat
model is LangChain's ``GenericFakeChatModel`` playing back scripted replies. For a real app, use
the Stella models (the retriever's defaults, for Chinese) and any LangChain chat model.

    python examples/langchain_chat_rag.py

Prints one line per turn: the user's message, the passage the chat model was given, and its reply.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from langchain_chroma import Chroma  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder  # noqa: E402
from langchain_core.runnables import RunnablePassthrough  # noqa: E402
from langchain_stella import StellaDialogueRetriever, StellaEmbeddings  # noqa: E402

PASSAGES = [
    "Basketball players often miss games because of knee and ankle injuries.",
    "A sprained ankle usually heals in two to six weeks with rest and ice.",
    "Table tennis needs quick reflexes and a very light paddle.",
    "The city museum is closed on Mondays and opens at 9 am on other days.",
    "A new phone battery usually lasts about two days on one charge.",
    "Tickets for the river boat tour cost 12 dollars for adults.",
    "Swimming in the river is not allowed because the current is strong.",
    "Rain is expected in the city all weekend.",
]

# (user message, the scripted reply of the fake chat model); one list per conversation.
CONVERSATIONS = [
    [
        ("Have you played basketball lately?", "No, I haven't."),
        ("Why not?", "I sprained my ankle."),
        ("How long will it take to heal?", "A few weeks, with rest."),
    ],
    [
        ("I just bought a new phone.", "Nice, which one?"),
        ("How long will the battery last?", "About two days."),
    ],
]

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer with the help of this passage:\n{context}"),
        MessagesPlaceholder("chat_history"),
        ("human", "{input}"),
    ]
)


def _passages(docs: list[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


def main() -> None:
    embeddings = StellaEmbeddings(model_name="minilm")
    vectorstore = Chroma(collection_name="langchain-chat-rag", embedding_function=embeddings)
    vectorstore.add_texts(PASSAGES)
    # No dedicated dialogue model offline: minilm embeds the whole chat ("A: ...[SEP]B: ...").
    retriever = StellaDialogueRetriever(vectorstore=vectorstore, dialogue_model=None, k=1)
    # The retriever reads the {"input", "chat_history"} dict itself; this view of it is typed so.
    history_aware = retriever.as_history_aware_retriever()

    turn = 0
    for conversation in CONVERSATIONS:
        llm = GenericFakeChatModel(messages=iter(AIMessage(reply) for _, reply in conversation))
        chain = RunnablePassthrough.assign(docs=history_aware).assign(
            answer=RunnablePassthrough.assign(context=lambda x: _passages(x["docs"]))
            | PROMPT
            | llm
            | StrOutputParser()
        )
        history: list[BaseMessage] = []
        for question, _ in conversation:
            turn += 1
            out = chain.invoke({"input": question, "chat_history": history})
            top = out["docs"][0]
            print(
                f"turn {turn} | user: {question} | passage ({top.metadata['score']:.2f}): "
                f"{top.page_content} | assistant: {out['answer']}"
            )
            history += [HumanMessage(question), AIMessage(out["answer"])]


if __name__ == "__main__":
    main()
