"""The generated signing secret: created once, private to its owner, refused when unsafe."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from vault.key_file import load_or_create_secret


def test_created_once_with_mode_0600_then_reused(tmp_path):
    path = tmp_path / "new" / "token-secret.key"
    secret, created = load_or_create_secret(path)
    assert created and len(secret) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == (secret, False)
    assert [p.name for p in path.parent.iterdir()] == ["token-secret.key"]  # nothing left aside


def test_concurrent_starts_agree_on_one_secret(tmp_path):
    path = tmp_path / "token-secret.key"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: load_or_create_secret(path), range(16)))
    assert len({secret for secret, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_a_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "token-secret.key"
    load_or_create_secret(path)
    path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_or_create_secret(path)


def test_a_truncated_file_is_refused_not_replaced(tmp_path):
    path = tmp_path / "token-secret.key"
    path.write_text("short")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="no usable secret"):
        load_or_create_secret(path)
    assert path.read_text() == "short"
