"""pyproject.toml and the locks agree: every dependency the project declares is pinned,
within its range, in requirements.txt (tests, benchmarks, development) and, for the
server's own, in requirements-serve.txt; the serve lock is a subset of the full one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCAL = {"telemed-client"}  # on pytest's path in the tree (clients/python), built as its own wheel


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _unmet(requirements: list[str], pins: dict[str, str]) -> list[str]:
    unmet = []
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in LOCAL:
            continue
        if name not in pins or not requirement.specifier.contains(pins[name], prereleases=True):
            unmet.append(f"{text} (locked: {pins.get(name)})")
    return unmet


def test_the_server_dependencies_are_pinned_in_both_locks():
    for lock in ("requirements.txt", "requirements-serve.txt"):
        assert not _unmet(PROJECT["dependencies"], _pins(lock)), f"{lock}: run scripts/lock.sh"


def test_the_extras_are_pinned_in_the_full_lock():
    extras = [text for group in PROJECT["optional-dependencies"].values() for text in group]
    assert not _unmet(extras, _pins("requirements.txt")), "run scripts/lock.sh"


def test_the_serve_lock_is_the_full_lock_less_the_tools():
    full, serve = _pins("requirements.txt"), _pins("requirements-serve.txt")
    assert {name: version for name, version in serve.items() if full.get(name) != version} == {}
    assert not {"pytest", "playwright", "mypy", "ruff"} & set(serve)
