"""`telemed doctor`: check a deployment's settings before (or beside) serving.

Each check reports ok, warn or fail with what to do; any fail makes the exit code 1.
It only looks: it creates no key, room or file that stays (a probe file in the data
directory is written and removed), and it reaches no host but the Redis, TURN and S3
servers named in the settings: each TURN server is asked for a relay allocation with its
credentials (released at once), which proves them; the S3 store is asked whether the
bucket exists, which proves its keys.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from vault.keyring import parse_key

from .archive_setup import s3_archive
from .config import Settings, reveal
from .ice_servers import IceServers

CERT_WARN_BEFORE = timedelta(days=14)
MIN_FREE_BYTES = 1 << 30
REDIS_TIMEOUT = 3.0
TURN_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    status: str  # "ok", "warn" or "fail"
    check: str
    detail: str


def _ok(check: str, detail: str) -> Finding:
    return Finding("ok", check, detail)


def _warn(check: str, detail: str) -> Finding:
    return Finding("warn", check, detail)


def _fail(check: str, detail: str) -> Finding:
    return Finding("fail", check, detail)


def check(settings: Settings) -> list[Finding]:
    return [*ports(settings), *media_ports(settings), *tls(settings), *data_dir(settings), *encryption(settings),
            *redis(settings), *turn(settings), *ice(settings), *s3(settings)]


def run(settings: Settings, out: TextIO = sys.stdout) -> int:
    findings = check(settings)
    for finding in findings:
        print(f"{finding.status:<4}  {finding.check:<10}  {finding.detail}", file=out)
    failed = sum(f.status == "fail" for f in findings)
    print(f"doctor: {failed} failed, {sum(f.status == 'warn' for f in findings)} warnings", file=out)
    return 1 if failed else 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _bindable(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def ports(settings: Settings) -> Iterator[Finding]:
    listeners = [("listen", settings.host, settings.port)]
    if settings.metrics_listen:
        host, _, port = settings.metrics_listen.rpartition(":")
        listeners.append(("metrics", host.strip("[]"), int(port)))
    for name, host, port in listeners:
        error = _bindable(host, port)
        if error:
            yield _fail("ports", f"{name} {host}:{port} cannot be bound: {error} (in use, or below 1024 without privilege?)")
        else:
            yield _ok("ports", f"{name} {host}:{port} is free")


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")


def media_ports(settings: Settings) -> Iterator[Finding]:
    """A media port range inside the ports the system hands out to any UDP sender loses
    the ones held at the time (docs/firewall.md)."""
    if settings.media_port_range is None:
        return
    low, high = settings.media_port_range
    try:
        first, last = (int(v) for v in EPHEMERAL_PORTS.read_text().split())
    except (OSError, ValueError):
        return  # not Linux: nothing to compare with
    if low <= last and first <= high:
        yield _warn("media", f"the media port range {low}-{high} overlaps the system's ephemeral ports "
                             f"{first}-{last} (net.ipv4.ip_local_port_range): ports other programs take "
                             "from there are missing from it meanwhile; choose a range outside")
    else:
        yield _ok("media", f"the media port range {low}-{high} ({high - low + 1} ports) is outside the "
                           f"ephemeral ports {first}-{last}")


def tls(settings: Settings) -> Iterator[Finding]:
    if not settings.tls_cert:
        if not _is_loopback(settings.host):
            yield _warn("tls", f"no --tls-cert while listening on {settings.host}: browsers off this "
                               "machine need HTTPS (or a TLS-terminating reverse proxy in front)")
        return
    from cryptography import x509

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.tls_cert, settings.tls_key)
        cert = x509.load_pem_x509_certificate(Path(settings.tls_cert).read_bytes())
    except (OSError, ssl.SSLError, ValueError) as exc:
        yield _fail("tls", f"cannot load {settings.tls_cert} with its key: {exc}")
        return
    left = cert.not_valid_after_utc - datetime.now(UTC)
    until = cert.not_valid_after_utc.date().isoformat()
    if left <= timedelta(0):
        yield _fail("tls", f"the certificate expired on {until}")
    elif left < CERT_WARN_BEFORE:
        yield _warn("tls", f"the certificate expires on {until}, in {left.days} days")
    else:
        yield _ok("tls", f"the certificate is valid until {until}")


def data_dir(settings: Settings) -> Iterator[Finding]:
    path = Path(settings.data_dir)
    if not path.exists():
        parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
        if os.access(parent, os.W_OK | os.X_OK):
            yield _warn("data-dir", f"{path} does not exist yet; it will be created on start")
        else:
            yield _fail("data-dir", f"{path} does not exist and {parent} is not writable")
        return
    if not path.is_dir():
        yield _fail("data-dir", f"{path} is not a directory")
        return
    probe = path / f".doctor-{os.getpid()}"
    try:
        with probe.open("wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        yield _fail("data-dir", f"{path} is not writable: {exc.strerror or exc}")
        return
    finally:
        probe.unlink(missing_ok=True)
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        yield _warn("data-dir", f"{path} is writable but has only {free // (1 << 20)} MiB free")
    else:
        yield _ok("data-dir", f"{path} is writable, {free // (1 << 30)} GiB free")


def encryption(settings: Settings) -> Iterator[Finding]:
    """Everything at rest is encrypted under the master key: it must be there, valid and
    private, and kept apart from the data it protects."""
    try:
        for key in settings.previous_master_keys:
            parse_key(reveal(key) or "")
    except ValueError as exc:
        yield _fail("encryption", f"previous_master_keys: {exc}")
    if settings.master_key:
        try:
            parse_key(reveal(settings.master_key) or "")
        except ValueError as exc:
            yield _fail("encryption", f"master_key: {exc}")
        else:
            yield _ok("encryption", "the master key comes from the settings")
        return
    path = Path(settings.master_key_file or Path(settings.data_dir) / "keys" / "master.key")
    if not path.exists():
        yield _warn("encryption", f"no master key yet: {path} will be created on first start; "
                                  "keep a copy apart from the data")
        return
    try:
        parse_key(path.read_text())
    except (OSError, ValueError) as exc:
        yield _fail("encryption", f"{path}: {exc}")
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        yield _fail("encryption", f"{path} is readable by others (mode {mode:o}): chmod 600 it")
    elif path.resolve().is_relative_to(Path(settings.data_dir).resolve()):
        yield _warn("encryption", f"the master key {path} lies inside the data directory: a copy of "
                                  "the data is then a copy of the key; set --master-key-file elsewhere")
    else:
        yield _ok("encryption", f"the master key file {path} is private")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def redis(settings: Settings) -> Iterator[Finding]:
    import redis as redis_client

    for name, url in (("room_store", settings.room_store),
                      ("audit_anchor_redis", reveal(settings.audit_anchor_redis))):
        if not url or not url.startswith(("redis://", "rediss://", "unix://")):
            continue
        shown = _without_password(url)
        try:
            connection = redis_client.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                                     socket_timeout=REDIS_TIMEOUT)
            try:
                connection.ping()
            finally:
                connection.close()
        except (redis_client.RedisError, OSError, ValueError) as exc:
            yield _fail("redis", f"{name} {shown} does not answer: {exc}")
        else:
            yield _ok("redis", f"{name} {shown} answers")


def s3(settings: Settings) -> Iterator[Finding]:
    """The S3 archive of recordings (docs/multinode.md): reachable, the keys good, the bucket there."""
    try:
        archive = s3_archive(settings)
        if archive is None:
            return
        archive.check()
    except (OSError, ValueError) as exc:  # ArchiveError is an OSError; ValueError: no 's3' extra
        yield _fail("s3", f"{settings.s3_endpoint} bucket {settings.s3_bucket}: {exc}")
    else:
        yield _ok("s3", f"{settings.s3_endpoint} bucket {settings.s3_bucket} answers to these keys")


def turn(settings: Settings) -> Iterator[Finding]:
    # The static list, and the short-lived credentials clients would be handed (docs/turn.md).
    minted = IceServers([], settings.turn_urls, reveal(settings.turn_secret), settings.turn_ttl)
    servers = [(f"ice_servers[{index}]", server) for index, server in enumerate(settings.ice_servers)]
    servers += [("turn_urls", server) for server in minted.for_identity("telemed-doctor")]
    relays = 0
    for label, server in servers:
        urls = server.get("urls")
        for url in [urls] if isinstance(urls, str) else list(urls or []):
            scheme, _, rest = str(url).partition(":")
            host = rest.split("?")[0].rsplit(":", 1)[0] if rest else ""
            where = f"{label} {url}"
            if scheme not in ("stun", "stuns", "turn", "turns") or not host:
                yield _fail("turn", f"{where}: not a stun:, stuns:, turn: or turns: URL with a host")
            elif scheme.startswith("turn") and not (server.get("username") and server.get("credential")):
                yield _fail("turn", f"{where}: a TURN server needs 'username' and 'credential'")
            elif scheme.startswith("turn"):
                relays += 1
                error = _allocate(str(url), server["username"], server["credential"])
                if error:
                    yield _fail("turn", f"{where}: {error}")
                else:
                    yield _ok("turn", f"{where}: allocated a relay with these credentials")
            else:
                yield _ok("turn", f"{where}: STUN")
    if not relays and not _is_loopback(settings.host):
        yield _warn("turn", "no TURN server in ice_servers or turn_urls: clients behind strict firewalls or "
                            "symmetric NATs (hospital networks, mobile carriers) cannot connect")


def _allocate(url: str, username: str, credential: str) -> str | None:
    """Ask the TURN server at `url` (turn:host[:port][?transport=udp|tcp] or turns:) for a
    relay with these credentials; None when it gave one, else why not."""
    from aioice import stun
    from aioice.turn import create_turn_endpoint

    scheme, _, rest = url.partition(":")
    address, _, query = rest.partition("?")
    if address.startswith("["):  # [IPv6]:port
        host, _, port = address[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = address.partition(":") if address.count(":") == 1 else (address, "", "")
    secure = scheme == "turns"
    transport = "tcp" if secure or "transport=tcp" in query else "udp"
    server = (host, int(port) if port.isdigit() else (5349 if secure else 3478))

    async def allocate() -> None:
        relay, _ = await asyncio.wait_for(create_turn_endpoint(
            asyncio.DatagramProtocol, server, username, credential, lifetime=60,
            ssl=ssl.create_default_context() if secure else None, transport=transport), TURN_TIMEOUT)
        relay.close()  # releases the allocation (a refresh with lifetime 0)

    try:
        asyncio.run(allocate())
    except stun.TransactionFailed as exc:
        reason = exc.response.attributes.get("ERROR-CODE", (0, "refused"))
        return f"refused the allocation: {reason[0]} {reason[1]} (wrong username or credential?)"
    except (TimeoutError, stun.TransactionTimeout):
        return f"no answer over {transport} within {TURN_TIMEOUT:g} s"
    except (OSError, ssl.SSLError, ValueError) as exc:
        return f"cannot reach it over {transport}: {exc}"
    return None


def _local_address(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def ice(settings: Settings) -> Iterator[Finding]:
    remote_clients = not _is_loopback(settings.host)
    for host in settings.ice_hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            yield _fail("ice", f"ice_hosts {host!r} is not an IP address")
            continue
        if not _local_address(host):
            yield _fail("ice", f"ice_hosts {host} is not an address of this machine")
        elif address.is_loopback and remote_clients:
            yield _warn("ice", f"ice_hosts {host} is loopback: clients on other machines cannot reach it")
        else:
            yield _ok("ice", f"ice_hosts {host} is an address of this machine")
    if not settings.ice_hosts and remote_clients:
        yield _warn("ice", "no ice_hosts: every interface is offered as a candidate (container, VPN and "
                           "docker bridges too); pin the ones clients can reach with --ice-hosts")
    if settings.public_ip:
        try:
            public = ipaddress.ip_address(settings.public_ip)
        except ValueError:
            yield _fail("ice", f"public_ip {settings.public_ip!r} is not an IP address")
        else:
            if public.is_private or public.is_loopback:
                yield _warn("ice", f"public_ip {public} is not a public address")
            else:
                yield _ok("ice", f"public_ip {public} is announced in candidates")
