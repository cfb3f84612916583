"""The ``pip install`` command that works for this copy of stella-rag.

Until stella-rag is on the package index, ``pip install 'stella-rag[offline]'`` fails; from a
clone installed with ``pip install -e .`` the command that works names the clone's folder. Every
install hint in an error message comes from :func:`install_command`.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import unquote, urlparse

__all__ = ["install_command"]


@functools.lru_cache(maxsize=1)
def _source_folder() -> str | None:
    """The folder stella-rag was installed from (an editable or local install), else ``None``."""
    from importlib import metadata

    try:
        raw = metadata.distribution("stella-rag").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not raw:
        return None
    try:
        url = urlparse(json.loads(raw).get("url", ""))
    except (ValueError, AttributeError):
        return None
    return unquote(url.path) if url.scheme == "file" and url.path else None


def install_command(extra: str | None = None) -> str:
    """``pip install ...`` for stella-rag with ``extra``: from the clone it was installed from,
    else from the package index."""
    folder = _source_folder()
    suffix = f"[{extra}]" if extra else ""
    if folder is not None:
        return f"pip install -e '{folder}{suffix}'"
    return f"pip install 'stella-rag{suffix}'"
