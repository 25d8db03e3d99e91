"""The composition root: settings, room store, tokens, live rooms. Handlers stay thin
and call into this."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.exceptions import RedisError

from clinical.pacs import DicomWebSource
from clinical.report_push import ReportPush
from conference.clinical_hub import ClinicalHub
from conference.host_controls import HostControls
from conference.live_room import LiveRoom, LiveRooms
from conference.peer import Peer, close_quietly
from conference.protocol import ProtocolError
from conference.reconnect_grace import ReconnectGrace
from conference.seat_ticket import restore_controls, restore_seat, ticket_of
from conference.signed_urls import UrlSigner
from recorder import RecordingManager
from rooms import (Attempt, Claims, InviteCodec, LoginLimiter, LoginLimits, OidcVerifier, PasswordHasher, Room,
                   SharedAttempt, SharedLoginLimiter, TokenError, TokenIssuer, open_credential_store,
                   open_room_store)
from sfu import Connection, MediaPort, PortRange, host_addresses, pin_host_addresses
from streaming.live_streams import LiveStreams
from streaming.program import ProgramFormat
from streaming.vod_library import VodLibrary
from vault import KeyRing
from vault.key_file import load_or_create_secret

from .archive_setup import s3_archive
from .audit_setup import open_audit_trail
from .cluster_node import PREFIX, ClusterNode, LocalNode, is_multinode, shared_secret
from .config import Settings, reveal
from .ice_servers import IceServers
from .metrics import Metrics

log = logging.getLogger("telemed.server")


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # First: a data directory that refuses writes stops the start, before anything else.
        self.audit = open_audit_trail(settings)
        self.store = open_room_store(settings.room_store, settings.data_dir)
        self.credentials = open_credential_store(settings.room_store, settings.data_dir)
        multinode = is_multinode(settings)
        secret = shared_secret(settings) if multinode else reveal(settings.secret) or _generated_secret(
            Path(settings.data_dir))
        self.secret = secret  # what invites and signed links derive from
        # In a cluster the signing keys are Redis's (loaded before serving, then rotated).
        self.tokens = TokenIssuer(secret, settings.token_ttl, max_session_age=settings.max_session_age)
        self.invites = InviteCodec(secret)
        self.node: ClusterNode | LocalNode = LocalNode()
        if multinode:
            self.node = ClusterNode(settings, self.tokens, lambda: list(self.live.rooms), self._load,
                                    self._moved, self._tickets)
        self.oidc = None
        if settings.oidc_jwks_url:
            self.oidc = OidcVerifier(settings.oidc_jwks_url, settings.oidc_issuer,
                                     settings.oidc_audience, settings.oidc_role_claim,
                                     settings.oidc_role_map)
        self.login_limiter = LoginLimiter(LoginLimits(
            per_address_room=settings.login_max_failures, per_address=4 * settings.login_max_failures,
            per_room=settings.login_room_max_failures, in_flight_per_address=settings.login_in_flight,
            in_flight_per_room=2 * settings.login_in_flight))
        self.shared_logins = None  # the limits of all nodes, in a cluster
        if isinstance(self.node, ClusterNode):
            self.shared_logins = SharedLoginLimiter(self.node.redis, self.login_limiter, PREFIX)
        self.passwords = PasswordHasher(settings.password_workers)
        self.keyring = KeyRing.load(reveal(settings.master_key),
                                    settings.master_key_file or Path(settings.data_dir) / "keys" / "master.key",
                                    [reveal(k) for k in settings.previous_master_keys])
        pacs = None
        if settings.pacs_url:
            pacs = DicomWebSource(settings.pacs_url, settings.pacs_username, reveal(settings.pacs_password),
                                  settings.pacs_timeout)
        push = ReportPush(settings.fhir_report_url, reveal(settings.fhir_report_token)) if settings.fhir_report_url else None
        self.clinical = ClinicalHub(settings.data_dir, self.store, secret, self.audit, self.keyring, pacs, push)
        self.live = LiveRooms(self.clinical.open_session)
        self.host_controls = HostControls(self.leave, self.revoke, self.audit)
        self.grace = ReconnectGrace(settings.resume_grace, self._grace_ended)
        self.recordings = RecordingManager(settings.data_dir, self.keyring, self.audit,
                                           settings.recording_retention_days, shared=multinode,
                                           archive=s3_archive(settings), local_days=settings.s3_local_days)
        # Replay: a <video> opens tracks by signed link (signaling/recording_links.py).
        self.recording_links = UrlSigner(secret, ttl=settings.recording_link_ttl)
        self.metrics = Metrics(self, settings.metrics_room_labels)
        self.clinical.on_intake = self.metrics.clinical_intake
        width, height = (int(v) for v in settings.live_size.split("x"))
        self.streams = LiveStreams(ProgramFormat(
            width=width, height=height, fps=settings.live_fps, video_bitrate=settings.live_video_kbps * 1000,
            part_frames=max(1, round(settings.live_fps / 3)), x264_preset=settings.live_x264_preset),
            Path(settings.data_dir) / "streams", self.keyring)
        self.vod = VodLibrary(Path(settings.data_dir) / "streams", self.keyring)
        pin_host_addresses(settings.ice_hosts)
        self.draining = False  # shutting down: no new joins (signaling/shutdown.py)
        self._background: set[asyncio.Task] = set()  # seat tickets written, streams carried on
        self.media_port: MediaPort | None = None
        # --media-port 0: each connection binds its own port, in this range if one is set
        self.port_range = PortRange(*settings.media_port_range) if settings.media_port_range else None
        self.ice_servers = IceServers(settings.ice_servers, settings.turn_urls, reveal(settings.turn_secret),
                                      settings.turn_ttl)

    async def open_media_port(self) -> None:
        """Bind the shared media port (unless configured off); OSError if it is taken."""
        if self.settings.media_port:
            hosts = host_addresses()
            try:
                self.media_port = await MediaPort.open(hosts, self.settings.media_port, tcp=self.settings.ice_tcp)
            except OSError as exc:
                raise OSError(exc.errno, f"media port {self.settings.media_port} ({'UDP and TCP' if self.settings.ice_tcp else 'UDP'}) "
                                         f"on {', '.join(hosts) or 'no address'}: {exc.strerror or exc}; "
                                         "choose another with --media-port") from None
            log.info("media on UDP%s port %d of %s", " and TCP" if self.settings.ice_tcp else "",
                     self.settings.media_port, ", ".join(s.host for s in self.media_port.sockets))
        elif self.port_range is not None:
            log.info("media on a UDP port per connection, from %s (%d ports, one per connection and "
                     "address)", self.port_range, len(self.port_range))
        else:
            log.info("media on a UDP port per connection, any the system gives")

    def close_media_port(self) -> None:
        if self.media_port is not None:
            self.media_port.close()
            self.media_port = None

    def _load(self) -> tuple[int, float]:
        """(peers, bytes forwarded so far) for this node's heartbeat."""
        return sum(len(room.peers) for room in self.live.rooms.values()), self.metrics.bytes_forwarded()

    def _tickets(self) -> list[tuple[str, str, dict]]:
        """Every seat here, for another node to take over if this one dies."""
        return [(room.name, peer.id, ticket_of(peer)) for room in self.live.rooms.values()
                for peer in room.peers.values() if peer.resumable]

    async def seat_changed(self, peer: Peer) -> None:
        """Resumed, or its tracks changed: another node would resume it as it is now."""
        if peer.in_room:
            await self._keep_seats([peer])

    async def controls_changed(self, live: LiveRoom) -> None:
        """A host locked the room, or removed or admitted someone: every seat's ticket
        carries the room's controls, for another node to restore them as they are now."""
        await self._keep_seats(list(live.peers.values()))

    async def _keep_seats(self, peers: list[Peer]) -> None:
        """Best effort: the next heartbeat writes every seat again."""
        tickets = [(peer.room.name, peer.id, ticket_of(peer)) for peer in peers if peer.resumable]
        if not tickets:
            return
        try:
            await self.node.keep_seats(tickets)
        except RedisError as exc:
            log.warning("seat ticket not written now (the heartbeat retries): %r", exc)

    def _restore_seats(self, live: LiveRoom, tickets: list[dict]) -> bool:
        """The room was live on a node that died: its seats come back, reconnecting, for
        their clients to resume here (docs/multinode.md "A node lost"). True if any did."""
        for ticket in tickets:
            try:
                peer = restore_seat(live, ticket, self.new_connection)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("unusable seat ticket in room %s: %r", live.name, exc)
                continue
            peer.on_connection_replaced = self.metrics.media.release
            self.grace.start(peer)
            log.info("seat carried over, waiting for its client",
                     extra={"fields": {"room": live.name, "peer": peer.id}})
        try:
            restore_controls(live, tickets)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("unusable host controls in the seat tickets of room %s: %r", live.name, exc)
        return bool(live.peers)

    def _spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed: %r", task.exception())

    async def _moved(self, room: str, url: str) -> None:
        """Another node hosts ``room`` now: tell everyone here where to join, and let them go."""
        live = self.live.rooms.get(room)
        if live is None:
            return
        for peer in [*live.peers.values(), *live.waiting.guests()]:
            peer.notify({"type": "moved", "url": url, "room": room})  # WebSockets close after it
            await self.leave(peer)

    async def reserve_login(self, address: str, room: str) -> Attempt | SharedAttempt:
        """A reservation to check one room password (rooms.ratelimit), across nodes if there are several."""
        if self.shared_logins is not None:
            return await self.shared_logins.reserve(address, room)
        return self.login_limiter.reserve(address, room)

    def new_connection(self, label: str) -> Connection:
        connection = Connection(announced_ip=self.settings.public_ip, label=label, media_port=self.media_port,
                                port_range=self.port_range)
        self.metrics.media.track(connection)
        return connection

    async def room(self, name: str) -> Room | None:
        return await self.store.get(name)

    async def verify(self, token: str | None, room: str | None = None) -> Claims:
        """Check a token, and that its room still exists in the incarnation it was issued for
        and that it was not revoked. TokenError(401/403) otherwise."""
        with self.metrics.token_check_seconds.time():
            claims = self.tokens.verify(token, room=room)
            await self._check_live(claims)
        return claims

    async def _check_live(self, claims: Claims) -> None:
        current = await self.store.get(claims.room)
        if current is None or current.incarnation != claims.incarnation:
            raise TokenError(401, "this room was closed; the token is no longer valid")
        if await self.credentials.is_token_revoked(claims.token_id):
            raise TokenError(401, "this token was revoked")

    async def refresh(self, claims: Claims) -> tuple[str, Claims]:
        """The same grant with a later expiry, within the maximum session age."""
        await self._check_live(claims)
        token = self.tokens.issue(claims.room, claims.role, claims.identity, claims.name,
                                  credential=claims.credential, incarnation=claims.incarnation,
                                  refresh_of=claims)
        return token, self.tokens.verify(token, claims.room)

    async def revoke(self, claims: Claims) -> None:
        """Refuse this token, and every refresh of it, from now on."""
        # Refreshes keep the token id and cannot outlive auth_time + max_session_age.
        latest = max(claims.expires_at, claims.auth_time + self.tokens.max_session_age)
        await self.credentials.revoke_token(claims.token_id, until=latest + 60)

    async def join(self, claims: Claims, notify: Callable[[dict], None], screen: int = 1,
                   resume: str | None = None, *, resume_secret: str | None = None,
                   address: str = "", can_wait: bool = True, resumable: bool = True) -> Peer:
        """A peer in the live room, or in its waiting room (`peer.id in room.waiting`);
        `can_wait=False` (WHIP/WHEP, which cannot wait for a host) refuses instead.
        `resumable=False` (WHIP/WHEP, which post again instead): no other node takes
        the seat over if this one dies."""
        if self.draining:
            raise ProtocolError("server-draining", "this server is shutting down: join again to reach another")
        began = time.monotonic()
        room = await self.store.get(claims.room)
        if room is None or room.incarnation != claims.incarnation:
            raise ProtocolError("not-found", "the room no longer exists")
        tickets: list[dict] = []
        if room.name not in self.live.rooms:
            # Elsewhere: another node hosts it. One that resumes lost its host: alive?
            await self.node.locate(room.name, host_lost=resume is not None)
            tickets = await self.node.seats(room.name)  # left by a host that died
        live = self.live.rooms.get(room.name)
        if live is None:  # opened by this join (joins arriving meanwhile found it opened)
            carried_ids = frozenset(str(t.get("peer_id")) for t in tickets)
            live = self.live.get_or_create(room.name, room.layout, room.created_at, carried_ids)
            carried = self._restore_seats(live, tickets)
            # Its host died while recording it, or streaming it live: both go on here.
            self.recordings.carry_on(live, go_on=carried)
            self.recordings.follow(live, room.settings.record == "auto")
            if carried:  # in the background: the compositor takes a while, the resumes must not wait
                self._spawn(self.streams.carry_on(live))
            else:
                self.streams.forget(live.name)
        host = claims.grants.admin
        # Whoever was let into this consult once (a reconnect, another screen of the
        # seat) comes back without knocking again, even when it is locked.
        known = claims.identity in live.admitted
        try:
            if not host and claims.identity in live.barred:
                raise ProtocolError("removed", "the host removed you from this consult")
            if not host and live.locked and not known:
                raise ProtocolError("room-locked", "the host has locked this consult; no one new may join")
            old = live.peers.get(resume) if resume else None
            if old is not None:
                # Knowing a peer id and identity (both shown to everyone) is not enough.
                if old.identity != claims.identity or not old.proves(resume_secret):
                    raise ProtocolError("forbidden", "only the session that was given its resume_secret may resume it")
                await self._resume(old, claims, notify, address)
                await self.seat_changed(old)
                return old
            if len(live.peers) + len(live.waiting) >= room.settings.max_participants:
                raise ProtocolError("room-full", "the room is full")
        except ProtocolError:
            self.live.discard_if_empty(live)
            raise
        must_wait = room.settings.waiting_room and not host and not known
        if must_wait and not can_wait:
            self.live.discard_if_empty(live)
            raise ProtocolError("waiting-room", "this room has a waiting room: join from the room page "
                                                "and wait for a host, or use a host's token")
        peer = Peer(claims, live, notify, self.new_connection, screen, address)
        peer.on_connection_replaced = self.metrics.media.release
        peer.resumable = resumable
        if must_wait:
            live.wait(peer)
            self.metrics.join_seconds.observe(time.monotonic() - began)
            log.info("peer waits for a host", extra={"fields": {"room": live.name, "peer": peer.id}})
            return peer
        live.add(peer)
        # Not awaited: nothing may come between the checks above and the add, nor before `joined`.
        self._spawn(self._keep_seats([peer]))
        self.metrics.joins.inc()
        self.metrics.join_seconds.observe(time.monotonic() - began)
        self.audit.record_soon("join", peer.actor, live.name, peer.id, screen=screen, resumed=bool(resume))
        log.info("peer joined", extra={"fields": {"room": live.name, "peer": peer.id,
                                                  "role": claims.role.value, "screen": screen}})
        return peer

    async def _resume(self, peer: Peer, claims: Claims, notify: Callable[[dict], None], address: str) -> None:
        """The same seat on a new connection: same peer id, tracks and subscriptions
        (docs/resume.md). The others saw it `reconnecting`; now it is back."""
        self.grace.cancel(peer)
        await peer.resume(claims, notify, address)
        peer.room.reconnected(peer)
        self.metrics.resumes.inc()
        self.audit.record_soon("resume", peer.actor, peer.room.name, peer.id, screen=peer.screen)
        log.info("peer resumed", extra={"fields": {"room": peer.room.name, "peer": peer.id}})

    async def suspend(self, peer: Peer) -> None:
        """The peer's connection went without a leave: it keeps its seat, shown as
        reconnecting, for `resume_grace` seconds; then it is a leave."""
        if peer.reconnecting:
            return
        # In the waiting room, or gone; or this server is shutting down (its clients
        # resume elsewhere, as a fresh join there): a leave.
        if not peer.in_room or self.settings.resume_grace <= 0 or self.draining:
            await self.leave(peer)
            return
        self.grace.start(peer)
        peer.room.reconnecting(peer)
        log.info("peer reconnecting", extra={"fields": {"room": peer.room.name, "peer": peer.id}})
        await peer.suspend()

    async def _grace_ended(self, peer: Peer) -> None:
        if peer.in_room and peer.reconnecting:
            log.info("peer did not resume in time", extra={"fields": {"room": peer.room.name, "peer": peer.id}})
            await self.leave(peer)

    def login_failed(self, address: str, room: str) -> None:
        """A wrong room password was checked (refusals without a check only count in metrics)."""
        self.metrics.login_failures.inc()
        log.warning("wrong room password", extra={"fields": {"room": room, "address": address}})

    async def leave(self, peer: Peer) -> None:
        room: LiveRoom = peer.room
        self.grace.cancel(peer)
        present = room.peers.get(peer.id) is peer  # leave may be called again for a peer gone
        connection = peer.connection
        await room.remove(peer)
        await close_quietly(peer)
        if connection is not None:
            self.metrics.media.release(connection)
        self.live.discard_if_empty(room)
        if present:
            self.audit.record_soon("leave", peer.actor, room.name, peer.id)
            try:  # a seat that ended is resumed nowhere
                await self.node.drop_seat(room.name, peer.id)
            except RedisError as exc:  # its ticket lapses by itself
                log.warning("seat ticket not dropped: %r", exc)
        if room.name not in self.live.rooms:  # the room's program ends with the room
            await self.streams.stop(room.name)
        log.info("peer left", extra={"fields": {"room": room.name, "peer": peer.id}})

    async def close(self) -> None:
        self.grace.close()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.recordings.close()
        for room in list(self.live.rooms.values()):
            for peer in list(room.peers.values()):
                await self.leave(peer)
        await self.streams.close()
        await self.clinical.close()
        await self.store.close()
        await self.credentials.close()
        await self.node.close()
        self.passwords.close()
        await self.audit.close()


SECRET_FILE = "token-secret.key"


def _generated_secret(data_dir: Path) -> str:
    """No secret configured: one kept in the data directory, so that tokens and links
    survive a restart along with the rooms they name."""
    path = data_dir / SECRET_FILE
    secret, created = load_or_create_secret(path)
    log.info("generated a signing secret" if created else "using the signing secret",
             extra={"fields": {"key_file": str(path)}})
    return secret
