"""This node's part in a cluster (docs/multinode.md), LiveKit's model: Redis is the shared
store and the registry of nodes, and a room fits on one node. The node beats its heartbeat
with its load, holds leases on the rooms it hosts, and shares the token signing keys.
Clients that reach another node for a room are sent here (``Elsewhere``), and back.

Without a Redis room store there is ``LocalNode``: one process, every room here.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import redis
from redis.exceptions import RedisError

from cluster import CpuMeter, NodeInfo, NodeRegistry, RoomLeases, SeatTickets
from rooms import RedisSigningKeys, TokenIssuer
from rooms.redis_client import connect

from .config import Settings, reveal

log = logging.getLogger("telemed.cluster")

PREFIX = "telemed:"
RETRY_SECONDS = 0.25
PROBE_SECONDS = 1.0  # to connect to a host that a resuming client lost
# A newcomer sent to a room's host has that host's port probed beside it (a host killed
# moments ago still has its heartbeat), once per this interval at most.
PROBED_FOR = 1.0
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Elsewhere(Exception):
    """The room is hosted by another node: send the client to ``url``."""

    def __init__(self, url: str, node: str) -> None:
        super().__init__(f"the room is hosted by node {node}")
        self.url = url
        self.node = node


def is_multinode(settings: Settings) -> bool:
    return settings.room_store.startswith(_REDIS_SCHEMES)


def node_identity(settings: Settings) -> str:
    return settings.node_id or f"{socket.gethostname()}-{settings.port}"


def shared_secret(settings: Settings) -> str:
    """The secret invites and signed links derive from, the same on every node: the
    configured one, or one the first node puts in Redis."""
    if settings.secret is not None:
        return reveal(settings.secret)
    client = redis.Redis.from_url(settings.room_store, decode_responses=True, socket_timeout=5,
                                  socket_connect_timeout=5)
    try:
        client.set(f"{PREFIX}secret", secrets.token_urlsafe(48), nx=True)
        return client.get(f"{PREFIX}secret")
    finally:
        client.close()


async def _refuses(url: str) -> bool:
    """Whether the machine at ``url`` answers that nothing listens there (the process
    died). No answer at all proves nothing (a slow or cut-off node): False."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), PROBE_SECONDS)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError) as exc:
        log.warning("a room's host did not answer a probe: taken for alive",
                 extra={"fields": {"url": url, "error": type(exc).__name__}})
        return False
    writer.close()
    return False


class LocalNode:
    """One node and no Redis: every room is here."""

    id = "local"

    async def locate(self, room: str, host_lost: bool = False) -> None:
        return None

    def urls(self) -> tuple[str, ...]:
        return ()

    async def refresh_urls(self, max_age: float = 0.0) -> None:
        return None

    async def owner_url(self, room: str) -> str | None:
        return None

    async def start(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def keep_seats(self, tickets: Iterable[tuple[str, str, dict]]) -> None:
        pass

    async def seats(self, room: str) -> list[dict]:
        return []

    async def drop_seat(self, room: str, peer_id: str) -> None:
        pass


# (room, peer id, seat ticket): what another node needs to take a seat over.
Ticket = tuple[str, str, dict]


class ClusterNode:
    def __init__(self, settings: Settings, tokens: TokenIssuer, live_rooms: Callable[[], Iterable[str]],
                 load: Callable[[], tuple[int, float]],
                 lost: Callable[[str, str], Awaitable[None]],
                 tickets: Callable[[], Iterable[Ticket]]) -> None:
        """``live_rooms``: names of the rooms live here; ``load``: (peers, forwarded bytes so
        far); ``lost(room, url)``: another node, at ``url``, holds the lease of a room live
        here (this node's heartbeat lapsed, say): send its people there; ``tickets``: the
        seats here, renewed every heartbeat so that they outlive this node by a grace period."""
        self.id = node_identity(settings)
        scheme = "https" if settings.tls_cert else "http"
        self.url = settings.public_url or f"{scheme}://{settings.host}:{settings.port}"
        if settings.host in ("0.0.0.0", "::") and not settings.public_url:
            log.warning("listening on all interfaces without --public-url: other nodes will "
                        "send clients to %s", self.url)
        self._ttl = settings.node_ttl
        self.redis = connect(settings.room_store)
        self.registry = NodeRegistry(self.redis, PREFIX, self._ttl)
        self.leases = RoomLeases(self.redis, PREFIX, self.id, self._ttl)
        # A seat's ticket outlives its host's last heartbeat by the grace it would have had.
        self._resumable = settings.resume_grace > 0
        self.seat_tickets = SeatTickets(self.redis, PREFIX, self._ttl + settings.resume_grace)
        self._tickets = tickets
        # A new key signs one heartbeat TTL after it appears: every node has reloaded by then.
        self.keys = RedisSigningKeys(self.redis, PREFIX, settings.token_key_rotation, activation=self._ttl)
        self._tokens = tokens
        self._live_rooms = live_rooms
        self._load = load
        self._lost = lost
        self._cpu = CpuMeter()
        self._bytes = (time.monotonic(), 0.0)
        self._bitrate = 0.0
        self._info = NodeInfo(self.id, self.url)
        self._urls: tuple[str, ...] = (self.url,)
        self._urls_at = -math.inf  # when _urls was read from the registry
        self._placed: dict[str, float] = {}  # rooms leased to us, not live yet -> when
        self._held: set[str] = set()         # rooms we renewed last time
        self._probed: dict[str, float] = {}  # node id -> when a newcomer last had it probed
        self._probes: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._redis_ok = True

    def __repr__(self) -> str:  # the Redis URL may carry a password
        return f"ClusterNode(id={self.id!r}, url={self.url!r})"

    async def locate(self, room: str, host_lost: bool = False) -> None:
        """Return if ``room`` is (now) hosted here; raise Elsewhere if another node hosts it.
        A room not hosted anywhere goes to the least-loaded healthy node. ``host_lost``:
        the client lost its connection to the room's host (it resumes): if that node's
        port refuses connections, it is dead, and the room is placed again at once rather
        than after its heartbeat lapses. A newcomer is sent on at once, and the host's
        port is checked beside it, so that its next try is placed if the host is dead."""
        for _ in range(3):
            owner = await self.leases.place(room, await self._candidates())
            if owner == self.id:
                self._placed[room] = time.monotonic()
                return
            node = await self.registry.get(owner)
            if node is not None and host_lost and await self._forget_if_dead(owner, node.url):
                host_lost = False
                continue
            if node is not None:
                self._check_beside(owner, node.url)
                raise Elsewhere(node.url, owner)
            # It died between placing and asking for its address; its lease lapses with it.
        # Nodes dying faster than we can ask: the caller answers "try again shortly".
        raise RedisError("no live node would take the room")

    def _check_beside(self, node: str, url: str) -> None:
        """Forget ``node`` if its port refuses connections, never in the newcomer's way
        (a host that does not answer at all would hold it up to PROBE_SECONDS)."""
        now = time.monotonic()
        if now - self._probed.get(node, float("-inf")) < PROBED_FOR:
            return
        self._probed = {n: t for n, t in self._probed.items() if now - t < PROBED_FOR}  # nodes come and go
        self._probed[node] = now
        task = asyncio.ensure_future(self._check(node, url))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _check(self, node: str, url: str) -> None:
        try:
            await self._forget_if_dead(node, url)
        except RedisError as exc:  # its heartbeat lapses anyway, or the next newcomer's check forgets it
            log.warning("a dead host could not be forgotten", extra={"fields": {"node": node, "error": str(exc)}})

    async def _forget_if_dead(self, node: str, url: str) -> bool:
        """Whether ``node``'s port refuses connections; then it is dead and forgotten."""
        if not await _refuses(url):
            return False
        log.warning("a room's host refuses connections: taken for dead", extra={"fields": {"node": node}})
        await self.registry.forget(node)
        return True

    def urls(self) -> tuple[str, ...]:
        """Every live node's public URL as of the last read (`refresh_urls`, or the last
        heartbeat): pages served by one node may connect to the others (CSP connect-src,
        the WebSocket's Origin check)."""
        return self._urls

    async def refresh_urls(self, max_age: float = 0.0) -> None:
        """Read the live nodes' URLs again unless the last read is under ``max_age`` s old.
        A page's CSP is fixed when it is served: it must name a node that joined since our
        last heartbeat, or the page could never follow a `moved` there."""
        now = time.monotonic()
        if now - self._urls_at < max_age:
            return
        try:
            await self._read_urls()
        except RedisError:
            pass  # the last list stands; the heartbeat says what is wrong

    async def _read_urls(self) -> None:
        self._urls_at = time.monotonic()
        self._urls = tuple(sorted({self.url, *(node.url for node in await self.registry.nodes())}))

    async def owner_url(self, room: str) -> str | None:
        """The URL of the node hosting ``room`` if that is another live node, else None."""
        owner = await self.leases.owner(room)
        if owner is None or owner == self.id:
            return None
        node = await self.registry.get(owner)
        return node.url if node else None

    async def keep_seats(self, tickets: Iterable[Ticket]) -> None:
        """Write these seats' tickets now (joined, resumed, published or unpublished)."""
        if self._resumable:
            await self.seat_tickets.put(tickets)

    async def seats(self, room: str) -> list[dict]:
        """The tickets of ``room``'s seats, left by its previous host."""
        return await self.seat_tickets.room(room) if self._resumable else []

    async def drop_seat(self, room: str, peer_id: str) -> None:
        if self._resumable:
            await self.seat_tickets.drop(room, peer_id)

    async def start(self) -> None:
        """Before serving: load the shared keys and register; then beat in the background."""
        await self._tick()
        self._task = asyncio.ensure_future(self._run())

    async def drain(self) -> None:
        """Shutting down: leave the registry and free our rooms' leases, so that the
        people told to reconnect are placed on other nodes rather than sent back here."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            for room in self._held | set(self._placed):
                await self.leases.release(room)
            await self.registry.leave(self.id)
        except RedisError as exc:
            log.warning("left the cluster without tidying up (leases lapse by themselves): %r", exc)
        self._held, self._placed = set(), {}

    async def close(self) -> None:
        await self.drain()
        for probe in list(self._probes):
            probe.cancel()
        await self.redis.aclose()

    async def _candidates(self) -> list[NodeInfo]:
        others = [n for n in await self.registry.nodes() if n.id != self.id]
        return [self._info, *others]

    async def _run(self) -> None:
        while True:
            # While Redis is away, knock often: the moment it is back, our leases must be
            # re-asserted before another node could place our rooms anew.
            await asyncio.sleep(self._ttl / 3 if self._redis_ok else RETRY_SECONDS)
            try:
                await self._tick()
            except RedisError as exc:
                if self._redis_ok:
                    log.error("Redis unreachable; calls go on, new joins wait for it: %r", exc)
                self._redis_ok = False
            except Exception:
                log.exception("cluster heartbeat failed")

    async def _tick(self) -> None:
        """One heartbeat: load, registration, leases, keys. After Redis comes back (even
        empty), this re-registers and re-asserts every lease and key."""
        self._info = self._measure()
        await self.registry.beat(self._info)
        await self._read_urls()
        now = time.monotonic()
        live = set(self._live_rooms())
        self._placed = {r: at for r, at in self._placed.items() if r not in live and now - at < self._ttl}
        holding = live | set(self._placed)
        for room in await self.leases.renew(holding):
            # A room fits on one node: the lease decides which, and this copy ends.
            owner = await self.owner_url(room)
            log.error("another node holds the lease of a room live here; its people go there",
                      extra={"fields": {"room": room, "node": owner}})
            if owner is not None and room in live:
                await self._lost(room, owner)
        for room in self._held - holding:  # emptied since: free it for placement at once
            await self.leases.release(room)
        self._held = holding
        await self.keep_seats(self._tickets())
        await self.keys.rotate_if_due()
        self._tokens.use_keys(await self.keys.load())
        if not self._redis_ok:
            log.info("Redis reachable again: re-registered, leases re-asserted")
            self._redis_ok = True

    def _measure(self) -> NodeInfo:
        peers, sent = self._load()
        now = time.monotonic()
        then, before = self._bytes
        if now > then and sent >= before:
            self._bitrate = (sent - before) * 8 / (now - then)
        self._bytes = (now, sent)
        return NodeInfo(self.id, self.url, round(self._cpu.read(), 3), peers,
                        len(list(self._live_rooms())), round(self._bitrate))
