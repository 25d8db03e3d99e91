"""Where the real-world clinical conformance corpus lives: ``shared/conformance/clinical``
beside the checkout (CI lays ``shared/`` next to its clone; a worktree finds it further
up). It is read in place and never copied into the repository."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


@cache
def corpus() -> Path:
    for base in (_REPO.parent, *_REPO.parents[1:]):
        candidate = base / "shared" / "conformance" / "clinical"
        if (candidate / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(f"no shared/conformance/clinical beside or above {_REPO}")


@cache
def manifest() -> dict:
    return json.loads((corpus() / "manifest.json").read_text())


def files(kind: str, suffix: str) -> list[str]:
    return sorted(p.name for p in (corpus() / kind).glob(f"*{suffix}"))


def read(kind: str, name: str) -> bytes:
    return (corpus() / kind / name).read_bytes()
