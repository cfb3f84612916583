"""The retriever in LCEL RAG chains with a fake chat model, over a multi-turn chat (minilm)."""

from __future__ import annotations

from typing import Any

from langchain_chroma import Chroma
from langchain_classic.chains import create_retrieval_chain
from langchain_classic.chains.combine_documents import create_stuff_documents_chain
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnablePassthrough
from langchain_stella import StellaDialogueRetriever

# The Stella card's way to encode a chat, pinned so that these tests of the plumbing do not
# move with the tuning of the core's default strategy (the example runs with the default).
STRATEGY = "dialogue"

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer with the help of this passage:\n{context}"),
        MessagesPlaceholder("chat_history"),
        ("human", "{input}"),
    ]
)
TURNS = [
    ("Have you played basketball lately?", "No, I haven't."),
    ("Why not?", "I sprained my ankle."),
    ("How long will it take to heal?", "A few weeks."),
]


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model call was given."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.prompts.extend(messages)


def _fake_llm() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(AIMessage(reply) for _, reply in TURNS))


def _format(docs: list[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


def test_the_model_gets_the_passage_the_history_makes_relevant(
    minilm_chroma: Chroma, corpus: tuple[Any, ...]
) -> None:
    injury, healing = corpus[0][0], corpus[1][0]
    retriever = StellaDialogueRetriever(
        vectorstore=minilm_chroma, dialogue_model=None, strategy=STRATEGY, k=1
    )
    # Alone, the second question is about nothing in particular and finds another passage.
    assert retriever.invoke("Why not?")[0].page_content != injury

    recorder = PromptRecorder()
    chain = (
        # BaseRetriever is typed to take a str; ours reads the whole dict (see ChatInput).
        RunnablePassthrough.assign(context=retriever | _format)  # type: ignore[arg-type]
        | PROMPT
        | _fake_llm()
        | StrOutputParser()
    )
    history: list[BaseMessage] = []
    for question, reply in TURNS:
        answer = chain.invoke(
            {"input": question, "chat_history": history}, {"callbacks": [recorder]}
        )
        assert answer == reply
        history += [HumanMessage(question), AIMessage(answer)]

    systems = [str(prompt[0].content) for prompt in recorder.prompts]
    assert len(systems) == 3
    assert injury in systems[0]
    assert injury in systems[1]  # "Why not?" after "Have you played basketball lately? / No"
    assert healing in systems[2]  # "How long will it take to heal?" after the sprain
    assert [m.content for m in recorder.prompts[1][1:]] == [TURNS[0][0], TURNS[0][1], TURNS[1][0]]


def test_drop_in_for_create_history_aware_retriever(
    minilm_chroma: Chroma, corpus: tuple[Any, ...]
) -> None:
    retriever = StellaDialogueRetriever(
        vectorstore=minilm_chroma, dialogue_model=None, strategy=STRATEGY, k=1
    )
    recorder = PromptRecorder()
    qa_chain = create_stuff_documents_chain(_fake_llm(), PROMPT)
    rag_chain = create_retrieval_chain(retriever.as_history_aware_retriever(), qa_chain)

    history = [HumanMessage(TURNS[0][0]), AIMessage(TURNS[0][1])]
    out = rag_chain.invoke(
        {"input": TURNS[1][0], "chat_history": history}, {"callbacks": [recorder]}
    )
    assert [d.page_content for d in out["context"]] == [corpus[0][0]]
    assert corpus[0][0] in str(recorder.prompts[0][0].content)
    assert out["answer"] == TURNS[0][1]  # the fake model's first scripted reply

    # Why the wrapper: given the retriever itself, create_retrieval_chain drops the history.
    plain = create_retrieval_chain(retriever, create_stuff_documents_chain(_fake_llm(), PROMPT))
    out = plain.invoke({"input": TURNS[1][0], "chat_history": history})
    assert [d.page_content for d in out["context"]] != [corpus[0][0]]
