"""Running the real `stella-rag` command in a subprocess, as a user would (for the CLI tests)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SCRIPT = Path(sys.executable).with_name("stella-rag")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "stella_rag.cli"]

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "NO_COLOR": "1",
    "COLUMNS": "200",
    "PYTHONUNBUFFERED": "1",
}
for _key in ("STELLA_RAG_PATH", "STELLA_RAG_SERVER", "STELLA_RAG_MODEL", "STELLA_RAG_COLLECTION"):
    ENV.pop(_key, None)


def _env(**extra: str) -> dict[str, str]:
    # A test may point its daemon elsewhere (conftest sets the session's folder).
    return {**ENV, "STELLA_RAG_DAEMON_DIR": os.environ["STELLA_RAG_DAEMON_DIR"], **extra}


def run(
    *args: str,
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 240,
    columns: int = 200,
    python: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``stella-rag ARGS`` (or ``python [python...] -m stella_rag.cli ARGS``)."""
    command = CLI if python is None else [sys.executable, *python, "-m", "stella_rag.cli"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=_env(COLUMNS=str(columns)),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def in_pty(args: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``stella-rag ARGS`` with a terminal as its stdin, stdout and stderr; and that terminal."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        env=_env(TERM="xterm"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    return proc, master


def read_pty(
    fd: int, proc: subprocess.Popen[bytes], done: Callable[[str], bool], timeout: float
) -> str:
    """What a child wrote to its terminal, until ``done(text)``, it exits, or ``timeout``."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if done(out.decode("utf-8", "replace")):
                break
        elif proc.poll() is not None:
            break
    return out.decode("utf-8", "replace")
