"""Unit tests run with sockets disabled (after the session's models are built)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    # A fixture rather than the disable_socket marker: the marker also blocks the session
    # fixtures that build the tiny models (saving a model makes sentence-transformers ask the hub).
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
