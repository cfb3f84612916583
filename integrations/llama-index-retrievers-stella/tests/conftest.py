"""Fixtures: what the LLM of a chat engine is given."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent, LLMCompletionStartEvent


class PromptRecorder(BaseEventHandler):
    """Every prompt an LLM receives, through LlamaIndex instrumentation."""

    prompts: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "PromptRecorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, LLMCompletionStartEvent):
            self.prompts.append(event.prompt)
        elif isinstance(event, LLMChatStartEvent):
            self.prompts.append("\n".join(str(m) for m in event.messages))


@pytest.fixture
def prompts() -> Any:
    recorder = PromptRecorder()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(recorder)
    yield recorder.prompts
    dispatcher.event_handlers.remove(recorder)
