"""Which role a room password opens, and what a role may ask for."""

from __future__ import annotations

import pytest

from rooms import (Role, Room, check_role_passwords, hash_password, hash_role_passwords, may_yield,
                   role_for_password, scrypt_runs)

HOST = "host-pw-1"


def room_with(**passwords: str) -> Room:
    host_hash = hash_password(HOST)
    checked = check_role_passwords(HOST, passwords, "r")
    return Room("r", host_hash, 0.0, role_password_hashes=hash_role_passwords(host_hash, checked))


def test_each_password_opens_its_own_role_only_with_one_derivation():
    room = room_with(participant="part-pw-1", viewer="view-pw-1")
    for password, role in [(HOST, Role.HOST), ("part-pw-1", Role.PARTICIPANT), ("view-pw-1", Role.VIEWER)]:
        before = scrypt_runs()
        assert role_for_password(password, room) is role
        assert scrypt_runs() == before + 1
    for wrong in ("dev-pw-1", "", None, 7, HOST + " "):
        before = scrypt_runs()
        assert role_for_password(wrong, room) is None
        assert scrypt_runs() - before <= 1
    before = scrypt_runs()
    assert role_for_password(HOST, None) is None  # no such room: the same single derivation
    assert scrypt_runs() == before + 1


@pytest.mark.parametrize("others", [{"viewer": HOST}, {"viewer": "same-pw-1", "device": "same-pw-1"},
                                    {"host": "other-pw-1"}, {"viewer": ""}, {"viewer": "12345678"},
                                    {"viewer": "short"}, {"viewer": 3}, "viewer=x"])
def test_bad_role_passwords_are_refused(others):
    with pytest.raises(ValueError):
        check_role_passwords(HOST, others, "r")


def test_a_role_yields_only_roles_it_covers():
    allowed = {(a, b) for a in Role for b in Role if may_yield(a, b)}
    assert allowed == {(Role.HOST, r) for r in Role} | {
        (Role.PARTICIPANT, Role.PARTICIPANT), (Role.PARTICIPANT, Role.VIEWER), (Role.PARTICIPANT, Role.DEVICE),
        (Role.VIEWER, Role.VIEWER), (Role.DEVICE, Role.DEVICE)}
