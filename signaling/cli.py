"""`python -m signaling [serve] [--flags]`: run the server with embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sqlite3
import ssl
import sys

from aiohttp import web
from redis.exceptions import RedisError

from clinical.storage import StorageUnavailable

from . import apikey_cli, audit_cli, config, logs, recordings_cli, vault_cli
from .connection_limits import edge_runner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telemed", description="Telemedicine SFU: password rooms, WebRTC forwarding, "
        "WHIP/WHEP, clinical data channels. Every flag can also be set as an environment "
        "variable or in the --config TOML file.")
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "apikey", "recordings", "vault", "audit", "doctor"],
                        help="serve (default); apikey create NAME | list | revoke KEY_ID; "
                             "recordings export ID DIR (a recording's decrypted files and manifest); "
                             "vault rewrap (data keys under a rotated master key); "
                             "audit verify (check the audit trail; exit 0 or 1); "
                             "doctor (check this deployment's settings; exit 0 or 1)")
    parser.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    config.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args)
    except (ValueError, OSError) as exc:
        sys.exit(f"telemed: bad configuration: {exc}")
    if args.command == "apikey":
        apikey_cli.run(settings, args.words)
        return
    if args.command == "recordings":
        print(recordings_cli.run(settings, args.words))
        return
    if args.command == "vault":
        print(vault_cli.run(settings, args.words))
        return
    if args.command == "audit":
        sys.exit(audit_cli.run(settings, args.words))
    if args.command == "doctor":
        from .doctor import run as doctor  # here: it starts nothing of the media stack
        sys.exit(doctor(settings))
    if args.words:
        sys.exit(f"telemed: unexpected arguments: {' '.join(args.words)}")
    logs.setup(settings.log_level)
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    ssl_context = None
    if settings.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)
    from .app import create_app  # here: `telemed audit` needs none of the media stack

    try:
        app = create_app(settings)
    except StorageUnavailable as exc:
        sys.exit(f"telemed: cannot start: {exc.message}")
    except (ValueError, OSError, sqlite3.Error) as exc:
        sys.exit(f"telemed: cannot start: {exc}")
    except RedisError as exc:  # the URL may carry a password: name the error only
        sys.exit(f"telemed: cannot start: Redis unreachable ({type(exc).__name__})")
    logging.getLogger("telemed").info("listening", extra={"fields": {
        "host": settings.host, "port": settings.port, "tls": bool(ssl_context),
        "ice_hosts": settings.ice_hosts, "room_store": settings.room_store.split("@")[-1],
        "pacs": settings.pacs_url}})
    try:
        asyncio.run(serve(app, settings, ssl_context))
    except RedisError as exc:  # joining the cluster before serving
        sys.exit(f"telemed: cannot start: Redis unreachable ({type(exc).__name__})")
    # Stopped cleanly: everything is closed and durable. The interpreter's own teardown of
    # the media stack's modules takes seconds on these machines (measured 3-7 s) and would
    # eat into the supervisor's stop timeout, so end here.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


async def serve(app: web.Application, settings: config.Settings, ssl_context: ssl.SSLContext | None) -> None:
    """Like `web.run_app`, but through the runner that caps connections per address, and
    with a graceful, bounded stop on SIGTERM or SIGINT (signaling/shutdown.py)."""
    from .app import SERVER_KEY
    from .shutdown import arm_watchdog, stop

    grace = settings.shutdown_grace
    # What the grace period leaves of the timeout goes to closing connections.
    runner = edge_runner(app, settings, access_log=None,
                         shutdown_timeout=max(0.5, (settings.shutdown_timeout - grace) / 2))
    try:
        await runner.setup()  # binds the media port (signaling/app.py)
    except OSError as exc:
        await runner.cleanup()
        sys.exit(f"telemed: cannot start: {exc.strerror or exc}")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context).start()
        # What start-up built lives as long as the server: out of the cyclic collector's
        # sight, so its full collections during a burst of joins scan only what the joins
        # made (about a tenth of their CPU before).
        gc.freeze()
        await stopping.wait()
    except BaseException:
        await runner.cleanup()
        raise
    watchdog = arm_watchdog(settings.shutdown_timeout)
    await stop(app[SERVER_KEY], runner, grace)
    watchdog.cancel()
