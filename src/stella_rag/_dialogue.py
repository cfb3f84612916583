"""DialogueEncoder: a whole chat in, one query vector for its last turn out."""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._encoder import Encoder, SentenceEncoder, TokenCounter, resolve_encoder
from ._errors import EmptyDialogueError, EncoderMismatchError
from ._models import MODEL_ALIASES, resolve_model
from ._pairing import DialogueModelInfo, check_pair, only_installed_code, read_info
from ._strategies import DialogueView, QueryStrategy, get_strategy
from ._turns import Turn, TurnLike, normalize_turns

__all__ = ["DEFAULT_ROLES", "SEP", "DialogueEncoder", "DialogueExplanation", "DialogueWindow"]

SEP = "[SEP]"
"""The separator the Stella dialogue model was trained with."""

DEFAULT_ROLES: Mapping[str, str] = {"user": "A", "assistant": "B"}
"""Role labels written into the text. ``A``/``B`` is how the Stella dialogue model's training
data names the two speakers (``"A: 最近去打篮球了吗"``, ``"B: 没有"``), so this keeps the input in
the form the model learned; ``user``/``assistant`` words would add tokens it never saw there."""

_SKIPPED_ROLES = frozenset({"system", "tool"})

_CHARS_PER_TOKEN = 16
"""A text longer than this many characters per budget token is first looked at by its end
(a 1 MB message is not tokenized whole just to learn that it does not fit)."""

_CJK_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CHARS_PER_OTHER_TOKEN = 4
"""For the guess of whether a whole dialogue fits: a CJK character is about one token, and
about this many other characters make one (4 is on the short side for English, so that a
dialogue guessed to fit nearly always does)."""

# The general encoder each dedicated dialogue model was trained to match (Stella card, 4.3).
_PAIRED_GENERAL = {
    MODEL_ALIASES["stella-dialogue-zh"]: "stella-large-zh",
}


def _trained_info(model: object) -> DialogueModelInfo | None:
    """The stella-rag metadata of a trained dialogue model given as a folder or encoder."""
    if model is None:
        return None
    if isinstance(model, (str, os.PathLike)):
        source = resolve_model(model)
        return read_info(source.location) if source.is_local else None
    model_id = getattr(model, "model_id", None)
    return read_info(model_id) if isinstance(model_id, str) and os.path.isdir(model_id) else None


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def _from_word_start(piece: str) -> str | None:
    """``piece`` from its first word boundary (whitespace or a CJK character) on, if it has one.

    A cut in the middle of a word tokenizes differently from the whole word; from a boundary
    on, the piece tokenizes as the same characters do inside the full text.
    """
    for i, char in enumerate(piece):
        if char.isspace():
            return piece[i + 1 :]
        if _is_cjk(char):
            return piece[i:]
    return None


@dataclass(frozen=True)
class DialogueWindow:
    """The dialogue text that is encoded, and what was left out to make it fit.

    Attributes:
        text: the turns as ``"{ROLE}: {TEXT}"`` joined with ``"[SEP]"``.
        turns: the turns that made it into ``text``, oldest first.
        dropped: how many of the earliest turns were dropped to fit ``max_tokens``.
        truncated_last: whether the last turn alone was too long and only its end was kept.
        tokens: the token count of ``text`` (special tokens included).
    """

    text: str
    turns: tuple[Turn, ...]
    dropped: int
    truncated_last: bool
    tokens: int


@dataclass(frozen=True)
class DialogueExplanation:
    """What :meth:`DialogueEncoder.explain` reports about one dialogue.

    Attributes:
        window: the dialogue text formatted to fit the budget (see :class:`DialogueWindow`).
        dropped_turns: the earliest turns left out to fit, oldest first.
        dropped_labels: the same turns as ``"{ROLE}: {TEXT}"``.
        max_tokens: the token budget.
        strategy: the name of the query strategy.
        texts: the texts the strategy encodes for this dialogue (``[window.text]`` for
            ``"dialogue"``; the last turn, its pairs and the history for ``"contextual"``).
    """

    window: DialogueWindow
    dropped_turns: tuple[Turn, ...]
    dropped_labels: tuple[str, ...]
    max_tokens: int
    strategy: str
    texts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The explanation as plain JSON-ready data."""
        return {
            "text": self.window.text,
            "tokens": self.window.tokens,
            "max_tokens": self.max_tokens,
            "turns": len(self.window.turns),
            "dropped": self.window.dropped,
            "dropped_turns": [{"role": t.role, "text": t.text} for t in self.dropped_turns],
            "truncated_last": self.window.truncated_last,
            "strategy": self.strategy,
            "encoded": list(self.texts),
        }


class DialogueEncoder:
    """Encodes a chat so that its vector stands for a rewrite of the last turn.

    Args:
        model: a dedicated dialogue model (``"stella-dialogue-zh"`` or any hub id / folder /
            :class:`SentenceEncoder`). ``None`` means there is no dedicated model: the general
            encoder embeds the dialogue, through ``strategy``. That is not the Stella dialogue
            model; the strategies exist to make up for it.
        general: the encoder the documents were embedded with (name or :class:`SentenceEncoder`).
            Default: the general model the dialogue model was trained against, else
            ``"stella-large-zh"``.
        max_tokens: the token budget of the formatted dialogue, special tokens included (default:
            the dialogue-side model's max sequence length, 512 for Stella).
        roles: the label written for each role, default :data:`DEFAULT_ROLES`. System and tool
            turns are left out; any other role must be in this mapping.
        strategy: how the dialogue becomes one vector (see :mod:`stella_rag.strategies`). Default:
            ``"dialogue"`` (the card's way) with a dedicated model, else the best general-encoder
            strategy.
        cache_size: how many recently encoded texts keep their vectors (default 1024; 0 turns
            the cache off). In a chat, earlier turns are encoded again at every turn; with the
            cache only the new turns are. The cache holds chat text in memory.
        **encoder_kwargs: passed to :class:`SentenceEncoder` for models given by name.

    Raises:
        EncoderMismatchError: the dialogue model's and the general model's dimensions differ.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceEncoder | None = None,
        *,
        general: str | os.PathLike[str] | Encoder | None = None,
        max_tokens: int | None = None,
        roles: Mapping[str, str] | None = None,
        strategy: str | QueryStrategy | None = None,
        cache_size: int = 1024,
        **encoder_kwargs: Any,
    ) -> None:
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 8
        ):
            raise ValueError(f"max_tokens must be an integer of at least 8, got {max_tokens!r}")
        # A model trained by stella-rag names its general model, roles and budget beside it.
        self.info = _trained_info(model)
        if self.info is not None:
            roles = self.info.roles if roles is None else roles
            max_tokens = self.info.max_tokens if max_tokens is None else max_tokens
        self._roles = dict(DEFAULT_ROLES if roles is None else roles)
        for role, label in self._roles.items():
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"roles[{role!r}] must be a non-empty string, got {label!r}")
        if general is None and model is not None and not isinstance(model, SentenceEncoder):
            general = (
                self.info.general_model
                if self.info is not None
                else _PAIRED_GENERAL.get(resolve_model(model).model_id)
            )
        self.general: TokenCounter = resolve_encoder(general, **encoder_kwargs)
        dialogue_kwargs = dict(encoder_kwargs)
        if self.info is not None and isinstance(model, (str, os.PathLike)):
            # Its pooling is stella_rag.modules.LastTurnPooling: installed code, not the model's.
            folder = resolve_model(model).location
            dialogue_kwargs.setdefault("trust_remote_code", only_installed_code(folder))
        self.dialogue_model: TokenCounter | None = (
            None if model is None else resolve_encoder(model, **dialogue_kwargs)
        )
        if self.info is not None and self.dialogue_model is not None:
            check_pair(self.info, self.general, self.dialogue_model.model_id)
        if self.dialogue_model is not None and self.dialogue_model.dim != self.general.dim:
            raise EncoderMismatchError(
                f"the dialogue model {self.dialogue_model.model_id!r} makes "
                f"{self.dialogue_model.dim}-d vectors but the general model "
                f"{self.general.model_id!r} makes {self.general.dim}-d vectors; documents and "
                "dialogues must be embedded in the same space"
            )
        self.strategy = get_strategy(
            "dialogue" if strategy is None and self.dialogue_model is not None else strategy
        )
        if self.strategy.pooling == "last_turn" and not callable(
            getattr(self.encoder, "encode_last_turns", None)
        ):
            raise ValueError(
                f"strategy {self.strategy.name!r} pools the last turn's tokens, which needs a "
                f"SentenceEncoder; got {type(self.encoder).__name__}"
            )
        self._max_tokens = max_tokens
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0, got {cache_size!r}")
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._costs: tuple[int, int] | None = None

    # --------------------------------------------------------------- properties
    @property
    def encoder(self) -> TokenCounter:
        """The encoder that embeds the dialogue side."""
        return self.dialogue_model if self.dialogue_model is not None else self.general

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    @property
    def model_id(self) -> str:
        return str(self.encoder.model_id)

    @property
    def max_tokens(self) -> int:
        return self._max_tokens or int(self.encoder.max_seq_length)

    @property
    def roles(self) -> dict[str, str]:
        return dict(self._roles)

    def __repr__(self) -> str:
        model = None if self.dialogue_model is None else self.dialogue_model.model_id
        return (
            f"DialogueEncoder(model={model!r}, general={self.general.model_id!r}, "
            f"strategy={self.strategy.name!r})"
        )

    # --------------------------------------------------------------- formatting
    def turns(self, dialogue: str | Iterable[TurnLike]) -> list[Turn]:
        """The conversational turns of a dialogue, checked (system and tool turns removed)."""
        raw = normalize_turns(dialogue)
        if not raw:
            raise EmptyDialogueError("the dialogue has no turns")
        kept: list[Turn] = []
        for i, turn in enumerate(raw):
            if turn.role in _SKIPPED_ROLES:
                continue
            if turn.role not in self._roles:
                raise ValueError(
                    f"turn {i}: unknown role {turn.role!r}; known roles are "
                    f"{sorted(self._roles)} (pass roles={{...}} to label others)"
                )
            if not turn.text.strip():
                if i == len(raw) - 1:
                    raise EmptyDialogueError(f"turn {i}, the last turn, is empty")
                continue
            kept.append(Turn(turn.role, turn.text.strip()))
        if not kept:
            raise EmptyDialogueError(
                f"the dialogue's {len(raw)} turn(s) are all system or tool messages or empty"
            )
        return kept

    def label(self, turn: Turn) -> str:
        """One turn as ``"{ROLE}: {TEXT}"``."""
        return f"{self._roles[turn.role]}: {turn.text}"

    def window(self, dialogue: str | Iterable[TurnLike]) -> DialogueWindow:
        """Format the dialogue, dropping whole turns from the start until it fits."""
        return self._window(self.turns(dialogue))

    def format(self, dialogue: str | Iterable[TurnLike]) -> str:
        """The text that is encoded: ``"{ROLE}: {TEXT}"`` per turn, joined with ``"[SEP]"``."""
        return self.window(dialogue).text

    def _window(self, turns: Sequence[Turn]) -> DialogueWindow:
        encoder = self.encoder
        budget = self.max_tokens
        labels = [self.label(t) for t in turns]
        # A chat that clearly fits costs one count of its text, whose tokens the forward pass
        # then reuses (the runner keeps the last few texts counted, tokenized). Otherwise the
        # walk below counts each turn once, and the pass reuses its final count.
        text = SEP.join(labels)
        cjk = len(_CJK_CHAR.findall(text))
        if cjk + (len(text) - cjk) / _CHARS_PER_OTHER_TOKEN <= budget:
            tokens = encoder.count_tokens([text])[0]
            if tokens <= budget:
                return DialogueWindow(text, tuple(turns), 0, False, tokens)
        overhead, sep_cost = self._fixed_costs()
        # Walk back from the last turn, counting each turn once; stop when the budget is spent.
        total = overhead
        start = len(turns)
        chunk = 16
        while start > 0:
            lo = max(0, start - chunk)
            counts = encoder.count_tokens(
                [self._clip(label, budget) for label in labels[lo:start]], special_tokens=False
            )
            for offset in range(len(counts) - 1, -1, -1):
                cost = counts[offset] + (sep_cost if start < len(turns) else 0)
                if total + cost > budget:
                    break
                total += cost
                start -= 1
            else:
                chunk *= 2
                continue
            break
        truncated = False
        if start == len(turns):  # the last turn alone does not fit: keep its end
            start = len(turns) - 1
            prefix = f"{self._roles[turns[-1].role]}: "
            room = budget - overhead - encoder.count_tokens([prefix], special_tokens=False)[0]
            tail = self._tail(turns[-1].text, max(room, 1))
            labels[-1] = prefix + tail.lstrip()
            truncated = True
        # Token counts of joined pieces can differ from the sum at the seams; check the real text.
        while True:
            text = SEP.join(labels[start:])
            tokens = encoder.count_tokens([text])[0]
            if tokens <= budget or start == len(turns) - 1:
                break
            start += 1
        kept = tuple(turns[start:])
        if truncated:
            kept = (*kept[:-1], Turn(turns[-1].role, labels[-1].split(": ", 1)[1]))
        return DialogueWindow(text, kept, start, truncated, tokens)

    def _clip(self, text: str, budget: int) -> str:
        """``text``, or for a very long one an end of it already over ``budget`` tokens."""
        size = budget * _CHARS_PER_TOKEN
        if len(text) <= size:
            return text
        piece = _from_word_start(text[-size:])
        if piece and self.encoder.count_tokens([piece], special_tokens=False)[0] > budget:
            return piece  # its end alone is over the budget, so the whole text is too
        return text

    def _tail(self, text: str, n: int) -> str:
        """The end of ``text`` that makes at most ``n`` tokens, tokenizing only its end."""
        size = max(64, n * _CHARS_PER_TOKEN)
        while size < len(text):
            piece = _from_word_start(text[-size:])
            if piece and self.encoder.count_tokens([piece], special_tokens=False)[0] > n:
                return self.encoder.keep_last_tokens(piece, n)
            size *= 4
        return self.encoder.keep_last_tokens(text, n)

    def _fixed_costs(self) -> tuple[int, int]:
        """Tokens of an empty text ([CLS] [SEP] or the model's equivalent) and of one separator.

        Counted once: every window, including each pair a strategy formats, needs them.
        """
        if self._costs is None:
            encoder = self.encoder
            self._costs = (
                encoder.count_tokens([""])[0],
                encoder.count_tokens([SEP], special_tokens=False)[0],
            )
        return self._costs

    def view(self, dialogue: str | Iterable[TurnLike]) -> DialogueView:
        """What a query strategy sees of the dialogue."""
        turns = self.turns(dialogue)
        return DialogueView(
            turns=turns, format=lambda ts: self._window(list(ts)).text, label=self.label
        )

    def explain(self, dialogue: str | Iterable[TurnLike]) -> DialogueExplanation:
        """What is encoded for a dialogue: its window, the turns dropped, the strategy's texts."""
        turns = self.turns(dialogue)
        window = self._window(turns)
        return DialogueExplanation(
            window=window,
            dropped_turns=tuple(turns[: window.dropped]),
            dropped_labels=tuple(self.label(t) for t in turns[: window.dropped]),
            max_tokens=self.max_tokens,
            strategy=self.strategy.name,
            texts=tuple(self.strategy.plan(self.view(turns))),
        )

    # ----------------------------------------------------------------- encoding
    def encode(self, dialogue: str | Iterable[TurnLike]) -> np.ndarray:
        """One query vector, shape ``(dim,)``, for the dialogue's last turn in context."""
        return self._encode_views([self.view(dialogue)])[0]  # errors without "dialogue 0:"

    def encode_many(self, dialogues: Iterable[str | Iterable[TurnLike]]) -> np.ndarray:
        """Query vectors for many dialogues, shape ``(n, dim)``, in one batched pass."""
        if isinstance(dialogues, (str, bytes)) or dialogues is None:
            raise TypeError(
                "encode_many expects a list of dialogues; for one dialogue use encode()"
            )
        views: list[DialogueView] = []
        for i, dialogue in enumerate(dialogues):
            try:
                views.append(self.view(dialogue))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"dialogue {i}: {exc}") from exc
        return self._encode_views(views)

    def _encode_views(self, views: list[DialogueView]) -> np.ndarray:
        if not views:
            loaded = getattr(self.encoder, "is_loaded", True)  # dim would load the weights
            return np.empty((0, self.dim if loaded else 0), dtype=np.float32)
        plans = [self.strategy.plan(v) for v in views]
        flat = [text for plan in plans for text in plan]
        vectors = self._encode_texts(flat)
        out = np.empty((len(views), vectors.shape[1]), dtype=np.float32)
        start = 0
        for i, (view, plan) in enumerate(zip(views, plans, strict=True)):
            out[i] = self.strategy.combine(view, vectors[start : start + len(plan)])
            start += len(plan)
        return out

    def _encode_fresh(self, texts: list[str]) -> np.ndarray:
        if self.strategy.pooling == "last_turn":
            return np.asarray(self.encoder.encode_last_turns(texts, SEP))  # type: ignore[attr-defined]
        return np.asarray(self.encoder.encode_queries(texts))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        """Query-side vectors of texts, reusing those of texts seen recently.

        In a chat the earlier turns come back at every turn; their vectors do not change.
        """
        if self._cache_size == 0:
            return self._encode_fresh(texts)
        pooling = self.strategy.pooling  # a text pooled two ways has two vectors
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for text in texts:
                vector = self._cache.get((pooling, text))
                if vector is not None:
                    self._cache.move_to_end((pooling, text))
                    found[text] = vector
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = self._encode_fresh(missing)
            with self._cache_lock:
                for text, vector in zip(missing, fresh, strict=True):
                    found[text] = vector
                    self._cache[(pooling, text)] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts])

    async def aencode(self, dialogue: str | Iterable[TurnLike]) -> np.ndarray:
        """Like :meth:`encode`, without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.encode, dialogue)
