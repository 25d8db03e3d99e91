"""A throwaway real coturn (Debian `coturn`) for the TURN tests, authenticating with the
TURN REST API shared secret as docs/turn.md sets it up, relaying to loopback only."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun

from tests.processes import serving
from tests.server import free_port

TURNSERVER = "/usr/bin/turnserver"
REALM = "telemed.test"


@dataclass
class Coturn:
    port: int            # UDP and TCP
    tls_port: int | None
    secret: str


def _answers_binding(port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(bytes(request), ("127.0.0.1", port))
            reply = stun.parse_message(sock.recv(2048))
        except (OSError, ValueError):
            return False
    return reply.transaction_id == request.transaction_id


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def running_coturn(workdir: Path, secret: str, listen: list[str], tls: tuple[Path, Path] | None = None
                   ) -> Iterator[Coturn]:
    """coturn on 127.0.0.1 plus the `listen` addresses; `tls` is (certificate, key) for a
    TLS listener. Relays come from 127.0.0.1, where the server under test listens."""
    binary = TURNSERVER if shutil.which(TURNSERVER) else shutil.which("turnserver")
    if binary is None:
        pytest.fail("turnserver is not installed (Debian coturn): run scripts/bootstrap.sh")
    port = free_port()
    tls_port = free_port() if tls else None
    lines = [f"listening-port={port}", "listening-ip=127.0.0.1", *(f"listening-ip={ip}" for ip in listen),
             "relay-ip=127.0.0.1", "allow-loopback-peers", "no-rfc5780", "no-dtls", "no-cli",
             "fingerprint", "use-auth-secret", f"static-auth-secret={secret}", f"realm={REALM}",
             f"userdb={workdir / 'turndb'}", f"pidfile={workdir / 'turnserver.pid'}",
             "log-file=stdout", "simple-log", "verbose"]
    if tls:
        lines += [f"tls-listening-port={tls_port}", f"cert={tls[0]}", f"pkey={tls[1]}"]
    else:
        lines.append("no-tls")
    config = workdir / "turnserver.conf"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)  # it holds the secret

    def ready() -> bool:
        return _answers_binding(port) and (tls_port is None or _accepts(tls_port))

    with serving("turnserver", [binary, "-c", str(config)], workdir / "turnserver.log", ready):
        yield Coturn(port, tls_port, secret)
