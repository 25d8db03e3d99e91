"""Where the real-world clinical conformance corpus lives: ``shared/conformance/clinical``
beside the checkout (CI lays ``shared/`` next to its clone; a worktree finds it further
up), beside the repository a local clone was made from (``git clone . /tmp/x``), or where
``TELEMED_CONFORMANCE_DIR`` says. It is read in place and never copied into the repository."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def _origin() -> list[Path]:
    """The repository this checkout was cloned from, when that is a local path."""
    try:
        url = subprocess.run(["git", "-C", str(_REPO), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    origin = Path(url)
    return [origin.parent, *origin.parents[1:]] if url and origin.is_absolute() and origin.is_dir() else []


@cache
def corpus() -> Path:
    configured = os.environ.get("TELEMED_CONFORMANCE_DIR")
    if configured:
        return Path(configured)
    for base in (_REPO.parent, *_REPO.parents[1:], *_origin()):
        candidate = base / "shared" / "conformance" / "clinical"
        if (candidate / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(f"no shared/conformance/clinical beside or above {_REPO} or its origin "
                            "(set TELEMED_CONFORMANCE_DIR)")


@cache
def manifest() -> dict:
    return json.loads((corpus() / "manifest.json").read_text())


def files(kind: str, suffix: str) -> list[str]:
    return sorted(p.name for p in (corpus() / kind).glob(f"*{suffix}"))


def read(kind: str, name: str) -> bytes:
    return (corpus() / kind / name).read_bytes()
