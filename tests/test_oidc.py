"""Tokens from a hospital identity provider, checked against a JWKS document that the test
serves on 127.0.0.1: the right ones are exchanged for room tokens, and a wrong issuer, audience,
key, algorithm or expiry is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server import free_port, start_server

ISSUER = "https://idp.hospital.test/realms/staff"
AUDIENCE = "telemed"
ROLE_MAP = {"consultant": "host", "nurse": "participant", "student": "viewer"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Idp:
    def __init__(self) -> None:
        self.key = rsa_key()
        self.kid = "key-1"

    def jwks(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, **overrides: object) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-123", "exp": now + 300, "iat": now,
                  "name": "Dr Amara Osei", "roles": ["nurse"], **overrides}
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@pytest.fixture
async def idp():
    provider = Idp()
    app = web.Application()

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(provider.jwks())

    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    provider.url = f"http://127.0.0.1:{port}/jwks.json"
    yield provider
    await runner.cleanup()


@pytest.fixture
async def oidc_server(tmp_path, idp):
    running, runner = await start_server(
        str(tmp_path / "data"), oidc_jwks_url=idp.url, oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
        oidc_role_claim="roles", oidc_role_map=ROLE_MAP)
    await running.create_room("ward", "host-pw-1")
    yield running
    await runner.cleanup()


async def exchange(server, body: dict, room: str = "ward") -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/api/rooms/{room}/token", json=body) as r:
            return r.status, await r.json(content_type=None)


async def test_an_id_token_yields_its_mapped_role_and_identity(oidc_server, idp):
    status, body = await exchange(oidc_server, {"id_token": idp.token()})
    assert status == 200 and body["role"] == "participant"
    assert body["identity"] == f"{ISSUER}#u-123"
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert (claims["cred"], claims["name"]) == (f"oidc:{ISSUER}", "Dr Amara Osei")
    status, body = await exchange(oidc_server, {"id_token": idp.token(roles=["student", "consultant"])})
    assert (status, body["role"]) == (200, "host")  # the strongest mapped role
    status, body = await exchange(oidc_server, {"id_token": idp.token(roles="consultant"), "role": "viewer",
                                                "name": "Dr O."})
    assert (status, body["role"]) == (200, "viewer")
    assert jwt.decode(body["token"], options={"verify_signature": False})["name"] == "Dr O."


@pytest.mark.parametrize("case", ["wrong-issuer", "wrong-audience", "unknown-key", "other-key-same-kid",
                                  "expired", "hs256-with-public-key", "garbage", "no-subject"])
async def test_a_bad_id_token_is_refused(oidc_server, idp, case):
    if case == "hs256-with-public-key":
        pem = idp.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        now = int(time.time())
        # PyJWT refuses a PEM as an HMAC key, so sign by hand the way an attacker would.
        header = b64(json.dumps({"alg": "HS256", "kid": idp.kid}).encode())
        payload = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "exp": now + 300,
                                  "roles": ["consultant"]}).encode())
        signature = b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
    else:
        token = {
            "wrong-issuer": lambda: idp.token(iss="https://evil.test/"),
            "wrong-audience": lambda: idp.token(aud="another-app"),
            "unknown-key": lambda: idp.token(key=rsa_key(), kid="key-2"),
            "other-key-same-kid": lambda: idp.token(key=rsa_key()),
            "expired": lambda: idp.token(exp=int(time.time()) - 120),
            "garbage": lambda: "not.a.token",
            "no-subject": lambda: idp.token(sub=None),
        }[case]()
    status, body = await exchange(oidc_server, {"id_token": token})
    assert (status, body["code"]) == (401, "oidc-invalid"), body
    # The same token with the right everything is accepted: the refusal was for this fault.
    assert (await exchange(oidc_server, {"id_token": idp.token()}))[0] == 200


async def test_roles_and_identities_stay_the_credentials(oidc_server, idp):
    status, body = await exchange(oidc_server, {"id_token": idp.token(roles=["janitor"])})
    assert (status, body["code"]) == (403, "oidc-no-role")
    status, body = await exchange(oidc_server, {"id_token": idp.token(), "role": "host"})
    assert (status, body["code"]) == (403, "role-not-allowed")
    status, body = await exchange(oidc_server, {"id_token": idp.token(), "identity": "someone-else"})
    assert (status, body["code"]) == (400, "identity-not-allowed")
    status, body = await exchange(oidc_server, {"id_token": idp.token()}, room="nosuch")
    assert status == 404


async def test_an_unreachable_provider_and_a_server_without_one(tmp_path, server):
    status, body = await exchange(server, {"id_token": "x.y.z"}, room="any")
    assert (status, body["code"]) == (400, "oidc-disabled")
    dead = f"http://127.0.0.1:{free_port()}/jwks.json"
    running, runner = await start_server(str(tmp_path / "dead"), oidc_jwks_url=dead, oidc_issuer=ISSUER,
                                         oidc_audience=AUDIENCE)
    try:
        await running.create_room("ward", "host-pw-1")
        token = Idp().token()
        status, body = await exchange(running, {"id_token": token})
        assert (status, body["code"]) == (503, "oidc-unavailable")
    finally:
        await runner.cleanup()
