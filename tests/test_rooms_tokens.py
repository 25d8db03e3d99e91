import base64
import dataclasses
import json
import time

import jwt
import pytest

from rooms import Claims, Grants, Role, TokenError, TokenIssuer

SECRET = "s" * 32
OTHER_SECRET = "o" * 32
ISSUE = {"credential": "password:host", "incarnation": "inc-1"}


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(SECRET, ttl_seconds=600)


def _valid_payload(**overrides):
    now = int(time.time())
    payload = {
        "sub": "dr-li",
        "room": "consult-1",
        "role": "participant",
        "grants": Grants.for_role(Role.PARTICIPANT).to_dict(),
        "name": "Dr Li",
        "iat": now,
        "exp": now + 60,
        "iss": "telemed",
        "jti": "abc",
        "cred": "password:participant",
        "inc": "inc-1",
        "auth_time": now,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _refused(issuer, token, status=401, room=None) -> TokenError:
    with pytest.raises(TokenError) as info:
        issuer.verify(token, room=room)
    assert info.value.status == status
    assert SECRET not in info.value.message
    return info.value


@pytest.mark.parametrize("role", list(Role))
def test_round_trip_carries_role_grants_and_expiry(issuer, role):
    before = time.time()
    claims = issuer.verify(issuer.issue("consult-1", role, "user-7", "Dr 李", **ISSUE), room="consult-1")
    assert claims == Claims(
        identity="user-7",
        room="consult-1",
        role=role,
        grants=Grants.for_role(role),
        name="Dr 李",
        expires_at=claims.expires_at,
        token_id=claims.token_id,
        credential="password:host",
        incarnation="inc-1",
        auth_time=claims.auth_time,
    )
    assert before + 599 <= claims.expires_at <= time.time() + 601


def test_claims_on_the_wire(issuer):
    token = issuer.issue("consult-1", "host", "u1", "Host", **ISSUE)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "room", "role", "grants", "name", "iat", "exp", "iss", "jti",
                            "cred", "inc", "auth_time"}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    other = jwt.decode(issuer.issue("consult-1", "host", "u1", "Host", **ISSUE), options={"verify_signature": False})
    assert payload["jti"] != other["jti"]


def test_verify_without_room_accepts_any_room(issuer):
    assert issuer.verify(issuer.issue("room-b", Role.VIEWER, "u", "n", **ISSUE)).room == "room-b"


def test_role_grants():
    assert Grants.for_role(Role.HOST) == Grants(True, True, True, True)
    assert Grants.for_role("participant") == Grants(publish=True, subscribe=True, data=True)
    assert Grants.for_role(Role.VIEWER) == Grants(subscribe=True, data=True)
    assert Grants.for_role(Role.DEVICE) == Grants(publish=True, data=True)


def test_wrong_room_is_forbidden(issuer):
    error = _refused(issuer, issuer.issue("room-a", Role.HOST, "u", "n", **ISSUE), status=403, room="room-b")
    assert "room" in error.message


def test_forged_with_other_secret(issuer):
    forged = TokenIssuer(OTHER_SECRET).issue("consult-1", Role.HOST, "u", "n", **ISSUE)
    assert "signature" in _refused(issuer, forged).message


def test_tampered_payload(issuer):
    header, _, signature = issuer.issue("consult-1", Role.VIEWER, "u", "n", **ISSUE).split(".")
    evil = _b64(_valid_payload(role="host", grants=Grants.for_role(Role.HOST).to_dict()))
    _refused(issuer, f"{header}.{evil}.{signature}")


def test_expired(issuer):
    now = int(time.time())
    token = jwt.encode(_valid_payload(iat=now - 120, exp=now - 60), SECRET, algorithm="HS256")
    assert "expired" in _refused(issuer, token).message


def test_expiry_leeway_is_small(issuer):
    now = int(time.time())
    just_expired = jwt.encode(_valid_payload(exp=now - 2), SECRET, algorithm="HS256")
    assert issuer.verify(just_expired).identity == "dr-li"


def test_alg_none_is_refused(issuer):
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_valid_payload())}."
    _refused(issuer, token)


def test_other_algorithm_is_refused(issuer):
    token = jwt.encode(_valid_payload(), SECRET + "x" * 32, algorithm="HS512")
    _refused(issuer, token)


def test_wrong_issuer(issuer):
    _refused(issuer, jwt.encode(_valid_payload(iss="someone-else"), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("token", [None, ""])
def test_missing(issuer, token):
    assert "missing" in _refused(issuer, token).message


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "a.b", "....", "€.€.€", "x" * 10_000, 12345, b"bytes.not.str"]
)
def test_malformed(issuer, token):
    _refused(issuer, token)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": None},
        {"exp": None},
        {"iat": None},
        {"jti": None},
        {"room": None},
        {"room": "bad room!"},
        {"role": "superuser"},
        {"role": ["host"]},
        {"grants": None},
        {"grants": {"publish": True}},
        {"grants": {"publish": 1, "subscribe": 1, "data": 1, "admin": 1}},
        {"name": None},
        {"name": ""},
        {"name": "x" * 129},
        {"sub": "a\nb"},
        {"cred": None},
        {"cred": "a\nb"},
        {"inc": None},
        {"inc": 7},
        {"auth_time": "yesterday"},
        {"auth_time": None},
        {"exp": "tomorrow"},
    ],
)
def test_signed_but_invalid_claims(issuer, overrides):
    _refused(issuer, jwt.encode(_valid_payload(**overrides), SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bad room", Role.HOST, "u", "n"), "room name"),
        (("r", "emperor", "u", "n"), "emperor"),
        (("r", Role.HOST, "", "n"), "identity"),
        (("r", Role.HOST, "u", "x" * 129), "name"),
    ],
)
def test_issue_rejects_bad_input(issuer, args, message):
    with pytest.raises(ValueError, match=message):
        issuer.issue(*args, **ISSUE)


@pytest.mark.parametrize(("secret", "ttl"), [("short", 600), (None, 600), (SECRET, 0), (SECRET, -5), (SECRET, True)])
def test_issuer_rejects_weak_config(secret, ttl):
    with pytest.raises(ValueError):
        TokenIssuer(secret, ttl_seconds=ttl)


def test_secret_not_in_repr(issuer):
    assert SECRET not in repr(issuer)


def test_a_refresh_keeps_the_grant_and_never_outlives_the_maximum_session_age():
    issuer = TokenIssuer(SECRET, ttl_seconds=600, max_session_age=900)
    first = issuer.verify(issuer.issue("consult-1", Role.HOST, "u", "n", **ISSUE))
    fresh = issuer.verify(issuer.issue("consult-1", Role.HOST, "u", "n", **ISSUE, refresh_of=first))
    assert (fresh.token_id, fresh.auth_time, fresh.credential) == (first.token_id, first.auth_time, "password:host")
    # Signed in 800 s ago: the refresh reaches only to auth_time + 900, not now + 600.
    old = dataclasses.replace(first, auth_time=first.auth_time - 800)
    capped = issuer.verify(issuer.issue("consult-1", Role.HOST, "u", "n", **ISSUE, refresh_of=old))
    assert capped.expires_at == old.auth_time + 900 < time.time() + 600
    too_old = dataclasses.replace(first, auth_time=first.auth_time - 900)
    with pytest.raises(TokenError) as info:
        issuer.issue("consult-1", Role.HOST, "u", "n", **ISSUE, refresh_of=too_old)
    assert info.value.status == 401 and "maximum age" in info.value.message


def test_recordings_grant_is_carried_by_refresh_and_absent_in_older_tokens(issuer):
    token = issuer.issue("consult-1", Role.VIEWER, "reviewer", "R", recordings=True, **ISSUE)
    claims = issuer.verify(token)
    assert claims.grants.recordings and not claims.grants.admin
    assert issuer.verify(issuer.issue("consult-1", Role.VIEWER, "reviewer", "R", refresh_of=claims,
                                      **ISSUE)).grants.recordings
    assert not issuer.verify(issuer.issue("consult-1", Role.HOST, "h", "H", **ISSUE)).grants.recordings
    older = {k: v for k, v in Grants.for_role(Role.PARTICIPANT).to_dict().items() if k != "recordings"}
    claims = issuer.verify(jwt.encode(_valid_payload(grants=older), SECRET, algorithm="HS256"))
    assert claims.grants == Grants.for_role(Role.PARTICIPANT)
    for bad in ({**older, "extra": True}, {k: v for k, v in older.items() if k != "admin"},
                {**older, "recordings": "yes"}):
        with pytest.raises(TokenError):
            issuer.verify(jwt.encode(_valid_payload(grants=bad), SECRET, algorithm="HS256"))
