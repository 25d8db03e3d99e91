"""What a running server has on disk, for the tests that check data at rest."""

from __future__ import annotations

from pathlib import Path


def file_contents(root: Path) -> dict[Path, bytes]:
    """Every file under `root` with its bytes. A file gone between listing and reading
    (an atomic write's temporary name, renamed meanwhile) is left out: the server keeps
    writing while a test looks."""
    contents = {}
    for path in root.rglob("*"):
        try:
            if path.is_file():
                contents[path] = path.read_bytes()
        except FileNotFoundError:
            continue
    return contents
