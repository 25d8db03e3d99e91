"""Nothing the project runs may reach outside the machine.

aiortc's bare `RTCPeerConnection()` (or an `RTCConfiguration` without `iceServers`) asks
a public STUN server, so every construction in the repository must say which servers
it uses. Checked on the syntax tree, so formatting cannot hide a call.
"""

from __future__ import annotations

import ast
import os
import socket
from pathlib import Path

import pytest

from tests.network_guard import OutsideTraffic, is_local, take_attempts

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".git", "node_modules", "artifacts", "__pycache__"}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_none(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def unconfigured_calls(source: str, filename: str = "<source>") -> list[str]:
    """Each `RTCPeerConnection(...)` without a configuration, and each `RTCConfiguration(...)`
    without `iceServers`, as "file:line"."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) \
                or any(k.arg is None for k in node.keywords):
            continue  # *args/**kwargs forwarders are judged where they are called
        name = _name(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        if name == "RTCPeerConnection":
            given = node.args[0] if node.args else keywords.get("configuration")
        elif name == "RTCConfiguration":
            given = node.args[0] if node.args else keywords.get("iceServers")
        else:
            continue
        if _is_none(given):
            found.append(f"{filename}:{node.lineno}")
    return found


def python_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)]


def test_every_peer_connection_names_its_ice_servers():
    offenders = []
    for path in python_files():
        offenders += unconfigured_calls(path.read_text(), str(path.relative_to(ROOT)))
    assert not offenders, ("RTCPeerConnection needs RTCConfiguration(iceServers=[...]); "
                           f"aiortc's default asks a public STUN server: {offenders}")


@pytest.mark.parametrize("source, bad", [
    ("RTCPeerConnection()", 1),
    ("aiortc.RTCPeerConnection(\n    )", 1),
    ("RTCPeerConnection(configuration=None)", 1),
    ("RTCPeerConnection(RTCConfiguration())", 1),
    ("RTCPeerConnection(RTCConfiguration(bundlePolicy=x))", 1),
    ("RTCPeerConnection(RTCConfiguration(iceServers=[]))", 0),
    ("RTCPeerConnection(configuration=config)", 0),
    ("RTCPeerConnection(*args)", 0),
])
def test_the_check_sees_through_formatting(source, bad):
    assert len(unconfigured_calls(source)) == bad


@pytest.mark.parametrize("host, local", [
    ("127.0.0.1", True), ("127.5.6.7", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", True), ("::ffff:127.0.0.1", True),
    ("198.51.100.7", False), ("stun.l.google.com", False), ("2001:db8::1", False), ("10.0.0.1", False),
])
def test_guard_knows_loopback(host, local):
    assert is_local(host) is local


def test_guard_refuses_outside_traffic_before_it_is_sent():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OutsideTraffic):
            s.sendto(b"x", ("198.51.100.7", 9))  # TEST-NET-2: refused before the system call
        with pytest.raises(OutsideTraffic):
            socket.getaddrinfo("stun.l.google.com", 19302)
        s.sendto(b"x", ("127.0.0.1", 9))
    assert len(take_attempts()) == 2


@pytest.mark.skipif(not os.environ.get("TELEMED_OFFLINE"),
                    reason="not run through ./telemed test (scripts/offline.sh)")
def test_suite_runs_in_a_namespace_with_only_loopback():
    assert [name for _, name in socket.if_nameindex()] == ["lo"]
