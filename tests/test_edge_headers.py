"""Security headers on every response (pages, files, JSON, errors, the WebSocket
upgrade); HSTS only under TLS, or behind a trusted proxy that says it terminated TLS."""

from __future__ import annotations

import datetime
import ssl

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signaling.app import create_app
from signaling.config import Settings
from signaling.connection_limits import edge_runner
from tests.server import ADMIN_KEY, free_media_port, free_port, start_server

PATHS = ["/", "/index.html", "/room.html", "/viewer.html", "/js/lobby.js", "/css/app.css",
         "/api/config", "/healthz", "/api/rooms/nope", "/no/such/file", "/metrics"]


def assert_hardened(headers) -> None:
    csp = headers.get("Content-Security-Policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") == "no-referrer"


async def test_every_response_carries_the_headers_and_no_hsts_over_http(server):
    async with aiohttp.ClientSession() as session:
        for path in PATHS:
            async with session.get(f"{server.url}{path}") as r:
                assert_hardened(r.headers)
                assert "Strict-Transport-Security" not in r.headers, path
        async with session.post(f"{server.url}/api/rooms/x/token", data=b"{") as r:
            assert r.status >= 400
            assert_hardened(r.headers)
        async with session.ws_connect(f"{server.url}/ws") as ws:
            pass
        assert ws.closed


def self_signed(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


async def test_hsts_under_tls(tmp_path):
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, ice_hosts=["127.0.0.1"], admin_key=ADMIN_KEY,
                        data_dir=str(tmp_path / "data"), secret="s" * 48, media_port=free_media_port())
    runner = edge_runner(create_app(settings), settings)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=self_signed(tmp_path)).start()
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/api/config", "/no/such/file"):
                async with session.get(f"https://127.0.0.1:{port}{path}", ssl=False) as r:
                    assert_hardened(r.headers)
                    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("trusted", [True, False])
async def test_hsts_behind_a_trusted_tls_proxy_only(tmp_path, trusted):
    running, runner = await start_server(str(tmp_path / "data"),
                                         trusted_proxies=["127.0.0.1"] if trusted else [])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{running.url}/api/config", headers={
                    "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}) as r:
                assert ("Strict-Transport-Security" in r.headers) is trusted
    finally:
        await runner.cleanup()
