"""`telemed doctor` passes a sound set-up and names each broken setting."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signaling.config import Settings
from signaling.doctor import check
from tests.processes import serving
from tests.server import free_port

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    key_file = keys / "master.key"
    if not key_file.exists():
        key_file.write_text(base64.b64encode(os.urandom(32)).decode())
        key_file.chmod(0o600)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return Settings(**{"port": free_port(), "data_dir": str(data), "ice_hosts": ["127.0.0.1"],
                       "master_key_file": str(key_file), **overrides})


def _failed(settings: Settings) -> list[str]:
    return [f"{f.check}: {f.detail}" for f in check(settings) if f.status == "fail"]


def _certificate(tmp_path: Path, days_left: float) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "telemed.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=days_left)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@pytest.fixture
def turn_url(tmp_path) -> Iterator[str]:
    """A real coturn on 127.0.0.1 (Debian coturn) with one long-term user, alice:right-pw."""
    port = free_port()

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    args = ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
            "--lt-cred-mech", "--user=alice:right-pw", "--realm=telemed.test", "--no-tls", "--no-dtls",
            "--no-cli", f"--userdb={tmp_path / 'turndb'}", f"--pidfile={tmp_path / 'turn.pid'}", "--log-file=stdout"]
    with serving("turnserver", args, tmp_path / "turn.log", accepts):
        yield f"turn:127.0.0.1:{port}"


def test_a_sound_setup_passes(tmp_path, redis_url, turn_url):
    cert, key = _certificate(tmp_path, days_left=90)
    settings = _settings(tmp_path, tls_cert=cert, tls_key=key, room_store=redis_url,
                         ice_servers=[{"urls": [turn_url, turn_url + "?transport=tcp"],
                                       "username": "alice", "credential": "right-pw"}])
    findings = check(settings)
    assert [f for f in findings if f.status == "fail"] == []
    assert {f.check for f in findings if f.status == "ok"} >= {"ports", "tls", "data-dir", "encryption",
                                                               "redis", "turn", "ice"}


def test_a_port_in_use_fails(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = _failed(_settings(tmp_path, port=taken.getsockname()[1]))
    assert len(failed) == 1 and failed[0].startswith("ports:")


def test_an_expired_certificate_fails_and_one_about_to_expire_warns(tmp_path):
    cert, key = _certificate(tmp_path, days_left=-1)
    assert [f for f in _failed(_settings(tmp_path, tls_cert=cert, tls_key=key)) if "expired" in f]
    cert, key = _certificate(tmp_path, days_left=5)
    findings = check(_settings(tmp_path, tls_cert=cert, tls_key=key))
    assert [f.detail for f in findings if f.check == "tls" and f.status == "warn"]


def test_a_data_dir_that_cannot_be_written_fails(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert [f for f in _failed(_settings(tmp_path, data_dir=str(not_a_dir))) if f.startswith("data-dir:")]


def test_a_master_key_others_can_read_fails(tmp_path):
    settings = _settings(tmp_path)
    Path(settings.master_key_file).chmod(0o644)
    assert [f for f in _failed(settings) if f.startswith("encryption:") and "chmod 600" in f]


def test_an_unreachable_redis_fails_without_showing_its_password(tmp_path):
    failed = _failed(_settings(tmp_path, room_store=f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"))
    assert len(failed) == 1 and failed[0].startswith("redis:")
    assert "hunter2" not in failed[0]


def test_wrong_turn_credentials_fail(tmp_path, turn_url):
    failed = _failed(_settings(tmp_path, ice_servers=[{"urls": turn_url, "username": "alice",
                                                       "credential": "wrong-pw"}]))
    assert len(failed) == 1 and failed[0].startswith("turn:") and "401" in failed[0]


def test_turn_without_credentials_and_foreign_ice_addresses_fail(tmp_path):
    failed = _failed(_settings(tmp_path, ice_hosts=["127.0.0.1", "192.0.2.7", "not-an-ip"],
                               ice_servers=[{"urls": "turn:127.0.0.1:3478"}, {"urls": "http://x"}]))
    assert sorted(f.split(":")[0] for f in failed) == ["ice", "ice", "turn", "turn"]


def test_the_command_exits_1_and_names_the_broken_setting(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    done = subprocess.run([sys.executable, "-m", "signaling", "doctor", "--data-dir", str(data),
                           "--port", str(free_port()), "--ice-hosts", "192.0.2.7"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "fail  ice" in done.stdout and "192.0.2.7" in done.stdout
    assert not (data / "keys").exists()  # it only looks
