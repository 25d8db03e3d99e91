"""The TURN test set-up, shared by tests/test_turn_relay.py and the browser's TURN test: a
client namespace behind a firewall, a real coturn (UDP, TCP and TLS) that it can reach,
and the server under test handing out credentials for that coturn."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.coturn import Coturn, running_coturn
from tests.firewalled_client_net import FirewalledClientNet
from tests.server import start_server

SECRET = "turn-shared-secret-for-tests-0123456789"


def self_signed(directory: Path, ip: str) -> tuple[Path, Path]:
    """A certificate for the TURN server's address, which the client is told to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "telemed test TURN")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "turn.crt", directory / "turn.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with FirewalledClientNet() as net:
        yield net


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory, network) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("turn-tls"), network.host_ip)


@pytest.fixture(scope="module")
def coturn(tmp_path_factory, network, tls_files):
    with running_coturn(tmp_path_factory.mktemp("coturn"), SECRET, [network.host_ip], tls_files) as running:
        yield running


def turn_urls(host: str, coturn: Coturn) -> list[str]:
    return [f"turn:{host}:{coturn.port}?transport=udp", f"turn:{host}:{coturn.port}?transport=tcp",
            f"turns:{host}:{coturn.tls_port}?transport=tcp"]


@pytest_asyncio.fixture
async def turn_server(tmp_path, network, coturn):
    """The server under test handing out TURN credentials; its HTTP and its media also
    listen on the veth address that the client namespace can see (but not reach by UDP)."""
    running, runner = await start_server(str(tmp_path / "data"), also_on=network.host_ip,
                                         turn_urls=turn_urls(network.host_ip, coturn),
                                         turn_secret=SECRET, ice_hosts=["127.0.0.1", network.host_ip])
    yield running
    await runner.cleanup()


