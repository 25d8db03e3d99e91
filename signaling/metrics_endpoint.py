"""`/metrics`, never open to anyone who can reach the consult port.

- ``metrics_key`` set: the main listener answers `/metrics` to `Authorization:
  Bearer <metrics_key>` only (401 otherwise).
- ``metrics_listen`` set: a separate listener (e.g. 127.0.0.1:9100, or an address
  on the monitoring network) serves `/metrics` without a key.
- Neither (the default): `/metrics` answers 403 `metrics-disabled` and says how to
  turn it on.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .auth import bearer
from .http_errors import HttpError
from .metrics import Metrics


def _page(metrics: Metrics) -> web.Response:
    return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def routes(metrics: Metrics, key: str | None) -> list[web.RouteDef]:
    async def guarded(request: web.Request) -> web.Response:
        if not key:
            raise HttpError(403, "metrics-disabled", "metrics are served only with metrics_key "
                            "or on metrics_listen")
        given = bearer(request)
        if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode()):
            raise HttpError(401, "unauthorized", "metrics need the metrics key as a bearer token",
                            {"WWW-Authenticate": "Bearer"})
        return _page(metrics)

    return [web.get("/metrics", guarded)]


def separate_listener(app: web.Application, metrics: Metrics, listen: str) -> None:
    """Serve `/metrics` on ``listen`` (host:port) for as long as ``app`` runs."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")

    async def page(request: web.Request) -> web.Response:
        return _page(metrics)

    runner: web.AppRunner | None = None

    async def start(app: web.Application) -> None:
        nonlocal runner
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", page)
        runner = web.AppRunner(metrics_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, int(port)).start()

    async def stop(app: web.Application) -> None:
        if runner is not None:
            await runner.cleanup()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
