"""Checks of caller input, with messages that name the bad item's position."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "check_k",
    "check_metadata",
    "check_text",
    "check_texts",
    "check_vector",
    "check_vector_rows",
]

_METADATA_TYPES = (str, int, float, bool)


def check_text(text: Any, where: str) -> str:
    if isinstance(text, str):
        if not text.strip():
            raise ValueError(f"{where} is empty or whitespace only; there is nothing to embed")
        return text
    if text is None:
        raise TypeError(f"{where} is None; expected a string")
    if isinstance(text, (bytes, bytearray)):
        raise TypeError(f"{where} is bytes; decode it to str first (for example .decode('utf-8'))")
    raise TypeError(f"{where} is {type(text).__name__} {text!r:.60}; expected a string")


def check_texts(texts: Any) -> list[str]:
    """A list of non-empty strings, or a precise ``TypeError``/``ValueError``."""
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got a single str; wrap it in a list")
    if texts is None:
        raise TypeError("expected a list of strings, got None")
    if isinstance(texts, (bytes, bytearray, Mapping)):
        raise TypeError(f"expected a list of strings, got {type(texts).__name__}")
    if not isinstance(texts, Iterable):
        raise TypeError(f"expected a list of strings, got {type(texts).__name__}")
    return [check_text(t, f"text at position {i}") for i, t in enumerate(texts)]


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be a positive integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    return int(k)


def _as_floats(vector: Any, where: str) -> np.ndarray:
    if vector is None or isinstance(vector, (str, bytes, bytearray, Mapping)):
        raise TypeError(f"{where} must be numbers, got {type(vector).__name__}")
    try:
        return np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where} must be numbers: {exc}") from None


def check_vector_rows(vectors: Any) -> np.ndarray:
    """Query vectors as a float32 matrix (an empty list gives no rows)."""
    arr = _as_floats(vectors, "the query vectors")
    if arr.size == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"query vectors must be a 2-d array (n, dim), got shape {arr.shape}")
    return arr


def check_vector(vector: Any, dim: int, where: str = "the query vector") -> np.ndarray:
    arr = _as_floats(vector, where)
    if arr.ndim != 1:
        raise ValueError(f"{where} must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != dim:
        raise ValueError(f"{where} has {arr.shape[0]} dimensions but the collection holds {dim}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{where} contains NaN or infinite values (first at index {int(bad[0])}: "
            f"{float(arr[bad[0]])})"
        )
    if not np.any(arr):
        raise ValueError(f"{where} is all zeros; it has no direction to compare by cosine")
    return arr


def check_metadata(metadata: Any, where: str) -> dict[str, Any] | None:
    """Chroma accepts flat metadata of str, int, float and bool values."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(metadata).__name__}")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: metadata keys must be strings, got {key!r}")
        if value is None:
            continue
        if not isinstance(value, _METADATA_TYPES):
            raise TypeError(
                f"{where}: the value of {key!r} is {type(value).__name__}; metadata values must "
                "be str, int, float or bool (serialise others, for example with json.dumps)"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: the value of {key!r} is {value}; it must be finite")
        out[key] = value
    return out or None


def json_objects(
    lines: Iterable[str], source: str, error: type[Exception] = ValueError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSON Lines text with their 1-based line numbers (blank lines skipped).

    Raises ``error`` naming ``source`` and the line for invalid JSON or a value that is not an
    object.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise error(f"{source}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record
