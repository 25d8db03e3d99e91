"""One seat in a room over one RTCPeerConnection, as docs/signaling.md describes."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCIceServer,
                    RTCPeerConnection, RTCRtpSender, RTCSessionDescription)
from aiortc.contrib.media import MediaRelay

log = logging.getLogger("telemed_client")

# How often the resume watchdog looks at the connection and at the route to the server.
WATCH_INTERVAL = 0.25
# The server refused the seat for good: no resume, no retry.
FINAL_CODES = frozenset({"unauthorized", "forbidden", "not-found", "removed", "room-locked", "denied",
                         "waiting-room"})


MAX_MOVES = 3  # redirects to the node hosting the room, per join
# Pauses before going back to the entry node when the node it sent us to is unreachable:
# nearly 5 s in all, well past the entry's once-a-second check of a host it sends people
# to (signaling/cluster_node.py), which finds a dead one.
HOST_GONE_RETRY = (0.1, 0.25, 0.5, 1.0, 1.0, 2.0)


class ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


async def _post(session: aiohttp.ClientSession, url: str, body: dict, headers: dict | None = None) -> dict:
    async with session.post(url, json=body, headers=headers or {}) as response:
        data = await response.json(content_type=None)
        if response.status >= 400:
            raise ClientError(data.get("code", str(response.status)), data.get("error", ""))
        return data


async def create_room(base_url: str, name: str, password: str, admin_key: str | None = None,
                      settings: dict | None = None, passwords: dict | None = None) -> dict:
    """Create a room; ``password`` is the host's, ``passwords`` optionally gives participant,
    viewer and device their own. ``admin_key`` is the admin key or an API key
    (``<key_id>.<secret>``)."""
    headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
    body = {"name": name, "password": password, "settings": settings or {}}
    if passwords:
        body["passwords"] = passwords
    async with aiohttp.ClientSession() as session:
        return await _post(session, f"{base_url}/api/rooms", body, headers)


async def fetch_token(base_url: str, room: str, password: str | None = None, role: str | None = None,
                      name: str = "", identity: str | None = None, *, invite: str | None = None,
                      id_token: str | None = None, api_key: str | None = None) -> dict:
    """A room token for one credential: the room ``password``, an ``invite`` code, an identity
    provider's ``id_token``, or, server-side, an ``api_key`` that vouches for ``identity``.
    ``role`` may ask for less than the credential gives; without it you get all it gives."""
    body: dict = {}
    for key, value in (("password", password), ("invite", invite), ("id_token", id_token),
                       ("role", role), ("identity", identity)):
        if value is not None:
            body[key] = value
    if name:
        body["name"] = name
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with aiohttp.ClientSession() as session:
        return await _post(session, f"{base_url}/api/rooms/{room}/token", body, headers)


class Client:
    """Join with `await Client.join(url, token)`; then publish, subscribe, chat."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")  # where we asked; a reconnect starts here again
        self.node_url = self.base_url          # the node hosting the room, once joined
        self.token = token
        self.peer_id: str | None = None
        self.info: dict = {}
        self.tracks: dict[str, dict] = {}          # track id -> description, everyone's
        self.layout: dict = {}
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.messages: asyncio.Queue[dict] = asyncio.Queue()  # data channel, from others
        self.on_event: Callable[[dict], None] | None = None
        # Consent: whether the room is being recorded, and who started it. Set from
        # `joined` and kept current by `recording` notices; on_recording hears changes.
        self.recording: dict | None = None                # {id, by, started_at} or None
        self.on_recording: Callable[[dict | None], None] | None = None
        self.pc: RTCPeerConnection | None = None
        self.control = None
        self.channels: dict[str, RTCDataChannel] = {}  # extra data channels, by label
        self._publish: dict[str, dict] = {}        # mid -> {source, label}
        self._published: dict[str, str] = {}      # mid -> track id
        self._subscribe: dict[str, str] = {}       # mid -> track id
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task | None = None
        self._refresher: asyncio.Task | None = None
        self._negotiating = asyncio.Lock()
        self._control_open = asyncio.Event()
        # Resume (docs/resume.md): what a new connection must publish and subscribe again.
        self._outgoing: dict[str, tuple[MediaStreamTrack, str | None]] = {}  # mid -> (track, codec)
        self.remote_tracks: dict[str, MediaStreamTrack] = {}  # track id -> current remote track
        self.generation = 0  # +1 per resume
        self.on_resumed: list[Callable[[], None]] = []  # after each resume, new channels open soon
        self._screen = 1
        self._channel_options: dict[str, dict] = {}
        self._ended: str | None = None  # why the server let us go (kicked, denied): no resume
        self._watchdog: asyncio.Task | None = None
        self._resume_lock = asyncio.Lock()
        self._keep_fresh = True
        self._closing: set[asyncio.Task] = set()  # old connections closing after a resume
        self._relay = MediaRelay()
        self._next_resume: asyncio.Future | None = None

    @classmethod
    async def join(cls, base_url: str, token: str, screen: int = 1,
                   channels: Mapping[str, dict] | None = None,
                   resume: Mapping[str, str] | None = None, keep_token_fresh: bool = True,
                   admission_timeout: float = 300, auto_resume: bool = True) -> "Client":
        """`channels`: extra data channels, label -> createDataChannel options (e.g.
        {"ecg": {"ordered": False}}); they must exist before the first offer.
        `resume`: an earlier seat's `resume_ticket`, to take that seat over (after a
        network change, say) instead of appearing twice. `keep_token_fresh`: renew the
        token at half its remaining life; the server closes a session whose token expires.
        `auto_resume`: when the socket or the media connection drops, or the route to the
        server changes (a new network), take the seat over on a new connection: same peer
        id, tracks and subscriptions (docs/resume.md); `resume()` does it on demand.

        In a room with a waiting room this returns once a host lets us in; a host's
        refusal raises ClientError("denied", reason)."""
        client = cls(base_url, token)
        client._screen = screen
        client._channel_options = dict(channels or {})
        client._keep_fresh = keep_token_fresh
        try:
            await client._connect(resume, admission_timeout)
            if auto_resume:
                client._watchdog = asyncio.ensure_future(client._watch())
        except BaseException:
            await client.close()
            raise
        return client

    async def _connect(self, resume: Mapping[str, str] | None = None, admission_timeout: float = 300) -> None:
        self._session = aiohttp.ClientSession()
        url = self.base_url
        moves = gone = 0
        while True:
            try:
                self._ws = await self._session.ws_connect(url.replace("http", "ws", 1) + "/ws", heartbeat=20)
            except aiohttp.ClientConnectionError:
                # The node we were sent to is gone (killed moments ago, its heartbeat still
                # fresh): back to the entry, which checks it meanwhile (docs/multinode.md).
                if url == self.base_url or gone == len(HOST_GONE_RETRY):
                    raise
                await asyncio.sleep(HOST_GONE_RETRY[gone])
                gone += 1
                url = self.base_url
                continue
            self._reader = asyncio.ensure_future(self._read())
            reply = await self.request({"type": "join", "token": self.token, "screen": self._screen,
                                        **(resume or {})})
            if reply["type"] != "moved":
                self.info = reply
                break
            # Another node hosts the room (docs/multinode.md): join there, same token. Our
            # seat's `info` (its resume secret) stays until a join gets through.
            self._reader.cancel()
            await self._ws.close()
            moves += 1
            if moves > MAX_MOVES + len(HOST_GONE_RETRY):
                raise ClientError("moved", "the servers kept sending us elsewhere")
            url = reply["url"]
        self.node_url = url
        if self.info["type"] == "waiting":
            self.info = await self._admission(admission_timeout)
        if self._keep_fresh:
            self._refresher = refresher = asyncio.ensure_future(self._keep_token_fresh())
            # Nothing to renew once the socket is gone, however it went.
            self._reader.add_done_callback(lambda _: refresher.cancel())
        self.peer_id = self.info["peer_id"]
        self.layout = self.info.get("layout", {})
        self.tracks = {t["id"]: t for t in self.info.get("tracks", [])}
        self._set_recording(self.info.get("recording"))
        # Only the servers the room hands out; an empty list, never aiortc's public STUN default.
        servers = [RTCIceServer(**s) for s in self.info.get("ice_servers") or []]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._control_open = asyncio.Event()
        self.control = self.pc.createDataChannel("control")
        self.control.on("open", self._control_open.set)
        self.control.on("message", self._on_data)
        self.channels = {label: self.pc.createDataChannel(label, **options)
                         for label, options in self._channel_options.items()}

    # --- resume (docs/resume.md) ---
    async def resume(self, reason: str = "asked", seen_generation: int | None = None) -> None:
        """Take our seat over on a new WebSocket and peer connection, within the server's
        grace period: the same peer id, published track ids and subscriptions. Remote
        tracks are new objects afterwards (`remote_tracks`). ClientError if the server
        refuses the seat for good, or the grace period passes. With ``seen_generation``
        (the watchdog's), nothing happens if another resume came since."""
        async with self._resume_lock:
            if seen_generation is not None and seen_generation != self.generation:
                return
            deadline = time.monotonic() + max(1.0, float(self.info.get("resume_grace") or 15))
            log.info("resuming seat %s (%s)", self.peer_id, reason)
            delay = 0.1
            while True:
                await self._drop_connection()
                ticket = self.resume_ticket  # a join that got through gave a new secret
                try:
                    await asyncio.wait_for(self._connect(ticket), max(1.0, deadline - time.monotonic()))
                    await self._restore_media()
                    break
                except ClientError as exc:
                    if exc.code in FINAL_CODES or time.monotonic() > deadline:
                        raise
                    log.info("resume attempt failed: %s", exc)
                except Exception as exc:  # the network, aiortc: try again while the seat waits
                    if time.monotonic() > deadline:
                        raise ClientError("resume-failed", f"could not resume: {exc!r}") from None
                    log.info("resume attempt failed: %r", exc)
                await asyncio.sleep(delay)
                # Not longer: a host that died is replaced within seconds (docs/multinode.md).
                delay = min(2 * delay, 0.5)
            self.generation += 1
            if self._next_resume is not None and not self._next_resume.done():
                self._next_resume.set_result(None)
            self._next_resume = None
        self.events.put_nowait({"type": "resumed", "peer_id": self.peer_id, "same_seat": self.info.get("resumed")})
        for callback in list(self.on_resumed):
            callback()

    def next_resume(self) -> asyncio.Future:
        """Done when the next resume has happened (for requests that must be sent again)."""
        if self._next_resume is None:
            self._next_resume = asyncio.get_running_loop().create_future()
        return self._next_resume

    async def _drop_connection(self) -> None:
        """Let the old socket and peer connection go, without a leave."""
        if self._refresher is not None:
            self._refresher.cancel()
        if self._reader is not None:
            self._reader.cancel()
        ws, session, pc = self._ws, self._session, self.pc
        self._ws = self._session = self.pc = None
        if pc is not None:
            for transceiver in pc.getTransceivers():
                if transceiver.sender.track is not None:
                    transceiver.sender.track.stop()  # our relay's copy: frames stop queueing for it
        # In the background: over a network that is gone, closing can take long (or,
        # inside aiortc, never end); the new connection must not wait for it.
        for closing in (ws, pc, session):
            if closing is not None:
                task = asyncio.ensure_future(closing.close())
                self._closing.add(task)
                task.add_done_callback(self._closed_quietly)

    def _closed_quietly(self, task: asyncio.Task) -> None:
        self._closing.discard(task)
        if not task.cancelled():
            task.exception()  # the old network is gone: nothing to say goodbye over

    async def _restore_media(self) -> None:
        """Publish our tracks under their old ids and subscribe what we had, in one offer."""
        outgoing, self._outgoing = self._outgoing, {}
        old_publish, old_published, old_subscribe = self._publish, self._published, self._subscribe
        self._publish, self._subscribe = {}, {}
        sending, receiving = [], []
        for mid, (track, codec) in outgoing.items():
            sending.append((self._add_sender(track, codec), mid, track, codec))
        for track_id in old_subscribe.values():
            kind = self.tracks[track_id]["kind"] if track_id in self.tracks else None
            if kind is not None:  # a track that went meanwhile is not asked for again
                receiving.append((self.pc.addTransceiver(kind, direction="recvonly"), track_id))
        await self.pc.setLocalDescription(await self.pc.createOffer())  # assigns the mids
        for transceiver, mid, track, codec in sending:
            info = dict(old_publish.get(mid, {}))
            if mid in old_published:
                info["track_id"] = old_published[mid]
            self._publish[transceiver.mid] = info
            self._outgoing[transceiver.mid] = (track, codec)
        for transceiver, track_id in receiving:
            self._subscribe[transceiver.mid] = track_id
        answer = await self.negotiate()
        for mid in answer.get("rejected", {}):
            self._subscribe.pop(mid, None)
        for transceiver, track_id in receiving:  # aiortc makes remote tracks on the answer
            if transceiver.mid in self._subscribe:
                self.remote_tracks[track_id] = transceiver.receiver.track

    async def _watch(self) -> None:
        """Resume when the socket or the media path drops, or the route to the server
        changes (a new network: the old addresses are gone or no longer the way)."""
        route = await self._route()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self._ended is not None:
                return
            generation = self.generation  # a resume under way (asked for) may be what we see
            now = await self._route()
            if self._reader is None or self._reader.done():
                reason = "signaling closed"
            elif self.pc is not None and self.pc.connectionState == "failed":
                reason = "media failed"
            elif now != route and now is not None:
                reason = f"network changed ({route} -> {now})"
            else:
                continue
            try:
                await self.resume(reason, generation)
            except ClientError as exc:
                log.warning("seat %s could not resume: %s", self.peer_id, exc)
                self._ended = exc.code
                self.events.put_nowait({"type": "closed", "reason": exc.message})
                return
            route = await self._route()

    async def _route(self) -> str | None:
        """Our source address towards the server, as the kernel would choose it now
        (a connected UDP socket sends nothing)."""
        url = urlsplit(self.node_url)  # the node hosting the room (docs/multinode.md)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(url.hostname, port, type=socket.SOCK_DGRAM)
            family, _, _, _, address = infos[0]
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
                return probe.getsockname()[0]
        except OSError:
            return None

    async def _admission(self, timeout: float) -> dict:
        async def outcome() -> dict:
            while True:
                event = await self.events.get()
                if event.get("type") == "joined":
                    return event
                if event.get("type") in ("denied", "closed"):
                    raise ClientError(event["type"], event.get("reason", "the server closed the connection"))
        return await asyncio.wait_for(outcome(), timeout)

    # --- host controls (a host token only) ---
    async def admit(self, peer_id: str) -> dict:
        return await self.request({"type": "admit", "peer_id": peer_id})

    async def deny(self, peer_id: str) -> dict:
        return await self.request({"type": "deny", "peer_id": peer_id})

    async def lock(self, locked: bool = True) -> dict:
        return await self.request({"type": "lock", "locked": locked})

    async def remove(self, peer_id: str) -> dict:
        return await self.request({"type": "remove", "peer_id": peer_id})

    async def mute_participant(self, peer_id: str) -> dict:
        return await self.request({"type": "mute-participant", "peer_id": peer_id})

    async def end(self) -> dict:
        return await self.request({"type": "end"})

    async def set_muted(self, track_id: str, muted: bool) -> None:
        """Mute or unmute one of our own tracks (after a host muted it, only we can unmute)."""
        await self._ws.send_str(json.dumps({"type": "mute", "track_id": track_id, "muted": muted}))

    @property
    def resume_ticket(self) -> dict[str, str]:
        """What a new connection sends to take this seat over; only this session was told it."""
        return {"resume": self.peer_id, "resume_secret": self.info["resume_secret"]}

    # --- signaling ---
    async def refresh_token(self) -> dict:
        """A fresh token (`{token, expires_at}`) for this identity; kept for reconnects."""
        reply = await self.request({"type": "refresh-token"})
        self.token = reply["token"]
        return reply

    async def _keep_token_fresh(self) -> None:
        expires_at = self.info["token_expires_at"]
        while time.time() < expires_at:
            await asyncio.sleep(max(1.0, (expires_at - time.time()) / 2))
            try:
                expires_at = (await self.refresh_token())["expires_at"]
            except ClientError as exc:
                if exc.code in ("unauthorized", "not-joined", "closed"):
                    return  # revoked, removed or too old: the server will close the session
            except asyncio.TimeoutError:
                pass  # try again in a moment

    async def request(self, message: dict, timeout: float = 20) -> dict:
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self._ws.send_str(json.dumps({**message, "id": request_id}))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def send_raw(self, text: str) -> None:
        """Send anything, for tests of the server's input checks."""
        await self._ws.send_str(text)

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            future = self._pending.get(message.get("id"))
            if future is not None and not future.done():
                if message["type"] == "error":
                    future.set_exception(ClientError(message["code"], message["error"]))
                else:
                    future.set_result(message)
                continue
            kind = message.get("type")
            if kind in ("kicked", "denied", "moved"):
                # The server let us go, or sent us to another node (docs/multinode.md,
                # which the application follows): no resume here.
                self._ended = kind
            if kind == "track-published":
                self.tracks[message["track"]["id"]] = message["track"]
            elif kind == "track-updated":
                self.tracks[message["track"]["id"]] = message["track"]
            elif kind == "track-unpublished":
                self.tracks.pop(message["track_id"], None)
            elif kind == "layout":
                self.layout = message["layout"]
            elif kind == "recording":
                self._set_recording(_recording_of(message))
            self.events.put_nowait(message)
            if self.on_event is not None:
                self.on_event(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ClientError("closed", "connection closed"))
        if self._watchdog is None or self._ended is not None:
            self.events.put_nowait({"type": "closed"})  # else the watchdog resumes, or says so

    def _set_recording(self, recording: dict | None) -> None:
        if recording == self.recording:
            return
        self.recording = recording
        if self.on_recording is not None:
            self.on_recording(recording)

    async def wait_event(self, kind: str, timeout: float = 10,
                         match: Callable[[dict], bool] = lambda m: True) -> dict:
        async def find() -> dict:
            while True:
                event = await self.events.get()
                if event.get("type") == kind and match(event):
                    return event
        return await asyncio.wait_for(find(), timeout)

    async def negotiate(self) -> dict:
        """Offer the current picture; the answer tells which mids were rejected."""
        async with self._negotiating:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            answer = await self.request({
                "type": "offer", "sdp": self.pc.localDescription.sdp,
                "publish": self._publish, "subscribe": self._subscribe})
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            self._published = answer.get("published", {})
            return answer

    # --- media ---
    async def publish(self, track: MediaStreamTrack, source: str = "camera", label: str = "",
                      codec: str | None = None) -> str:
        """Publish a track; `codec` (e.g. "video/H264") restricts what we offer."""
        transceiver = self._add_sender(track, codec)
        await self.pc.setLocalDescription(await self.pc.createOffer())  # assigns the mid
        self._publish[transceiver.mid] = {"source": source, "label": label}
        self._outgoing[transceiver.mid] = (track, codec)
        answer = await self.negotiate()
        if transceiver.mid not in self._published:
            raise ClientError("rejected", answer.get("rejected", {}).get(transceiver.mid, "not published"))
        return self._published[transceiver.mid]

    def _add_sender(self, track: MediaStreamTrack, codec: str | None):
        # Through a relay: aiortc stops a sender's track when its connection dies, and a
        # resume sends the same source again.
        relayed = self._relay.subscribe(track)
        transceiver = self.pc.addTransceiver(relayed, direction="sendonly")
        if codec is not None:
            capabilities = RTCRtpSender.getCapabilities(track.kind).codecs
            transceiver.setCodecPreferences(
                [c for c in capabilities if c.mimeType.lower() == codec.lower()
                 and c.parameters.get("packetization-mode", "1") == "1"]
                + [c for c in capabilities if c.mimeType.lower().endswith("/rtx")])
        return transceiver

    async def unpublish(self, track_id: str) -> None:
        mid = next(m for m, t in self._published.items() if t == track_id)
        self._publish.pop(mid, None)
        self._outgoing.pop(mid, None)
        transceiver = next(t for t in self.pc.getTransceivers() if t.mid == mid)
        transceiver.direction = "inactive"
        await self.negotiate()

    async def subscribe(self, track_id: str) -> MediaStreamTrack:
        """Receive a published track; returns aiortc's (decoding) remote track."""
        kind = self.tracks[track_id]["kind"] if track_id in self.tracks else "video"
        transceiver = self._free_transceiver(kind)
        if transceiver is None:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            await self.pc.setLocalDescription(await self.pc.createOffer())
        else:
            transceiver.direction = "recvonly"
        self._subscribe[transceiver.mid] = track_id
        answer = await self.negotiate()
        if transceiver.mid in answer.get("rejected", {}):
            self._subscribe.pop(transceiver.mid)
            raise ClientError("rejected", answer["rejected"][transceiver.mid])
        self.remote_tracks[track_id] = transceiver.receiver.track
        return transceiver.receiver.track

    def _free_transceiver(self, kind: str):
        used = set(self._subscribe) | set(self._publish)
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == kind and transceiver.mid not in used \
                    and transceiver.direction == "inactive":
                return transceiver
        return None

    async def unsubscribe(self, track_id: str) -> None:
        for mid, tid in list(self._subscribe.items()):
            if tid == track_id:
                del self._subscribe[mid]
                transceiver = next(t for t in self.pc.getTransceivers() if t.mid == mid)
                transceiver.direction = "inactive"
        await self.negotiate()

    # --- data ---
    def _on_data(self, raw: object) -> None:
        if isinstance(raw, str):
            self.messages.put_nowait(json.loads(raw))

    async def send_chat(self, text: str) -> None:
        await asyncio.wait_for(self._control_open.wait(), 10)
        self.control.send(json.dumps({"type": "chat", "text": text}))

    async def set_layout(self, layout: dict) -> None:
        await self._ws.send_str(json.dumps({"type": "set-layout", "layout": layout}))

    async def close(self) -> None:
        self._ended = self._ended or "closed"
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
        if self._ws is not None and not self._ws.closed:
            try:
                await self._ws.send_str(json.dumps({"type": "leave"}))
            except ConnectionError:
                pass
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.pc is not None:
            await self.pc.close()
        for track, _ in self._outgoing.values():
            track.stop()  # as aiortc's sender would have: it ends the relay's reader too
        if self._session is not None:
            await self._session.close()


def _recording_of(notice: dict) -> dict | None:
    """The room's recording after a `recording` notice: None once it stopped or failed."""
    if notice.get("state") != "started":
        return None
    return {"id": notice.get("id"), "by": notice.get("by"), "started_at": notice.get("started_at")}
