"""A reproducible mixed-length corpus: short questions to ~500-token passages, English and Chinese.

The same ``seed`` always gives the same texts, so every system in a run, and every run, embeds
exactly the same input.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

_EN_WORDS = (
    "the a of and to in is it that for on with as was at by from this battery phone price "
    "museum open monday river bridge city weather rain book question answer because lately "
    "system model passage retrieval vector search engine document index store language user "
    "assistant history context window token budget memory speed latency result quality score "
    "travel ticket hour train station coffee recipe sauce oven minute garden flower winter"
)
_EN = _EN_WORDS.split()
_ZH = (
    "你好我他她它们的是不了在有人这中大为上个国和也子时道出说要去打篮球乒乓没最近因受伤吗呢价格多少钱"
    "电池手机博物馆周一开放城市天气下雨图书问题回答检索向量文档索引模型语言历史上下文速度质量"
)

# (share of the corpus, min words, max words): questions, sentences, paragraphs, long passages.
_SHAPES = ((0.25, 4, 16), (0.35, 20, 80), (0.25, 80, 220), (0.15, 220, 420))


def _english(rng: random.Random, words: int) -> str:
    out: list[str] = []
    while len(out) < words:
        n = min(rng.randint(6, 18), words - len(out))
        sentence = [rng.choice(_EN) for _ in range(n)]
        out.extend([sentence[0].capitalize(), *sentence[1:-1], sentence[-1] + "."])
    return " ".join(out[:words])


def _chinese(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    while len(out) < chars:
        n = rng.randint(8, 24)
        out.extend(rng.choice(_ZH) for _ in range(n))
        out.append(rng.choice("，。？"))
    return "".join(out[:chars])


def make_corpus(n: int, seed: int = 0, zh_share: float = 0.4) -> list[str]:
    """``n`` passages of mixed length and language, the same for the same ``seed``."""
    rng = random.Random(seed)
    shares = [s for s, _, _ in _SHAPES]
    texts = []
    for i in range(n):
        _, lo, hi = rng.choices(_SHAPES, weights=shares)[0]
        words = rng.randint(lo, hi)
        text = _chinese(rng, words) if rng.random() < zh_share else _english(rng, words)
        texts.append(f"{i}: {text}")  # unique, so content-hash ids never collide
    return texts


def short_passages(n: int, seed: int = 1) -> Iterator[str]:
    """A stream of ``n`` short (5-25 word) unique passages, generated lazily."""
    rng = random.Random(seed)
    for i in range(n):
        yield f"{i} " + " ".join(rng.choice(_EN) for _ in range(rng.randint(5, 25)))


def make_dialogues(n: int, seed: int = 2, tokens: int = 200) -> list[list[dict[str, str]]]:
    """``n`` chats of alternating user/assistant turns, about ``tokens`` words each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        turns: list[dict[str, str]] = []
        size = 0
        while size < tokens:
            role = "user" if len(turns) % 2 == 0 else "assistant"
            words = rng.randint(8, 20) if role == "user" else rng.randint(25, 50)
            turns.append({"role": role, "text": _english(rng, words)})
            size += words
        if turns[-1]["role"] != "user":
            turns.append({"role": "user", "text": _english(rng, rng.randint(5, 12))})
        out.append(turns)
    return out
