"""Which role a room password opens, and what a role may ask for."""

from __future__ import annotations

import pytest

from rooms import Role, Room, hash_password, hash_role_passwords, may_yield, role_for_password


def test_each_password_opens_its_own_role_only():
    hashes = hash_role_passwords("host-pw", {"participant": "part-pw", "viewer": "view-pw"})
    room = Room("r", hash_password("host-pw"), 0.0, role_password_hashes=hashes)
    assert role_for_password(room, "host-pw") is Role.HOST
    assert role_for_password(room, "part-pw") is Role.PARTICIPANT
    assert role_for_password(room, "view-pw") is Role.VIEWER
    for wrong in ("dev-pw", "", None, 7, "host-pw "):
        assert role_for_password(room, wrong) is None


@pytest.mark.parametrize("others", [{"viewer": "host-pw"}, {"viewer": "same", "device": "same"},
                                    {"host": "x"}, {"viewer": ""}, {"viewer": 3}, "viewer=x"])
def test_bad_role_passwords_are_refused(others):
    with pytest.raises(ValueError):
        hash_role_passwords("host-pw", others)


def test_a_role_yields_only_roles_it_covers():
    allowed = {(a, b) for a in Role for b in Role if may_yield(a, b)}
    assert allowed == {(Role.HOST, r) for r in Role} | {
        (Role.PARTICIPANT, Role.PARTICIPANT), (Role.PARTICIPANT, Role.VIEWER), (Role.PARTICIPANT, Role.DEVICE),
        (Role.VIEWER, Role.VIEWER), (Role.DEVICE, Role.DEVICE)}
