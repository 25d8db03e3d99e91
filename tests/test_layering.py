"""The packages import each other only downwards (docs: DESIGN's parts table)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"vault", "sfu", "rooms", "clinical", "cluster", "conference", "recorder", "streaming",
        "signaling", "telemed_client"}
ALLOWED = {
    "vault": set(),
    "sfu": {"vault"},
    "rooms": {"vault"},
    "clinical": {"vault"},
    "cluster": set(),
    "conference": {"vault", "sfu", "rooms", "clinical"},
    "recorder": {"vault", "sfu", "rooms", "clinical", "conference"},
    "streaming": {"vault", "sfu", "rooms", "clinical", "conference", "recorder"},
    "signaling": OURS - {"telemed_client"},
}
NO_AIORTC = {"rooms", "clinical", "cluster"}


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of `package` imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_sits_below_it(package):
    if not (ROOT / package).is_dir():
        pytest.skip(f"{package}/ does not exist yet")
    for path, names in imports_of(package).items():
        wrong = (names & OURS) - ALLOWED[package] - {package}
        assert not wrong, f"{path} imports {sorted(wrong)}"
        if package in NO_AIORTC:
            assert not names & {"aiortc", "aioice", "pylibsrtp"}, f"{path} imports the media stack"
