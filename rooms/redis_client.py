"""How every part of ours connects to a shared Redis: short timeouts, so that an outage is
a quick clean refusal rather than a hang, and a brief retry on a broken connection, so
that the first command after Redis restarted reconnects instead of failing (redis-py
retries plain commands by default, but not scripts run over a connection the restart cut)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2,
                                   retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                                   retry_on_error=[ConnectionError, TimeoutError])
