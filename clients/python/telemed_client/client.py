"""One seat in a room over one RTCPeerConnection, as docs/signaling.md describes."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Mapping

import aiohttp
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCIceServer,
                    RTCPeerConnection, RTCRtpSender, RTCSessionDescription)


MAX_MOVES = 3  # redirects to the node hosting the room, per join


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

    @classmethod
    async def join(cls, base_url: str, token: str, screen: int = 1,
                   channels: Mapping[str, dict] | None = None,
                   resume: Mapping[str, str] | None = None, keep_token_fresh: bool = True,
                   admission_timeout: float = 300) -> "Client":
        """`channels`: extra data channels, label -> createDataChannel options (e.g.
        {"ecg": {"ordered": False}}); they must exist before the first offer.
        `resume`: an earlier seat's `resume_ticket`, to take that seat over (after a
        network change, say) instead of appearing twice. `keep_token_fresh`: renew the
        token at half its remaining life; the server closes a session whose token expires.

        In a room with a waiting room this returns once a host lets us in; a host's
        refusal raises ClientError("denied", reason)."""
        client = cls(base_url, token)
        try:
            await client._connect(screen, channels, resume, admission_timeout)
            if keep_token_fresh:
                client._refresher = refresher = asyncio.ensure_future(client._keep_token_fresh())
                # Nothing to renew once the socket is gone, however it went.
                client._reader.add_done_callback(lambda _: refresher.cancel())
        except BaseException:
            await client.close()
            raise
        return client

    async def _connect(self, screen: int, channels: Mapping[str, dict] | None = None,
                       resume: Mapping[str, str] | None = None,
                       admission_timeout: float = 300) -> None:
        self._session = aiohttp.ClientSession()
        url = self.base_url
        for _ in range(MAX_MOVES + 1):
            self._ws = await self._session.ws_connect(url.replace("http", "ws", 1) + "/ws", heartbeat=20)
            self._reader = asyncio.ensure_future(self._read())
            self.info = await self.request({"type": "join", "token": self.token, "screen": screen,
                                            **(resume or {})})
            if self.info["type"] != "moved":
                break
            # Another node hosts the room (docs/multinode.md): join there, same token.
            self._reader.cancel()
            await self._ws.close()
            url = self.info["url"]
        else:
            raise ClientError("moved", "the servers kept sending us elsewhere")
        self.node_url = url
        if self.info["type"] == "waiting":
            self.info = await self._admission(admission_timeout)
        self.peer_id = self.info["peer_id"]
        self.layout = self.info.get("layout", {})
        self.tracks = {t["id"]: t for t in self.info.get("tracks", [])}
        self._set_recording(self.info.get("recording"))
        # Only the servers the room hands out; an empty list, never aiortc's public STUN default.
        servers = [RTCIceServer(**s) for s in self.info.get("ice_servers") or []]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.control = self.pc.createDataChannel("control")
        self.control.on("open", self._control_open.set)
        self.control.on("message", self._on_data)
        self.channels = {label: self.pc.createDataChannel(label, **options)
                         for label, options in (channels or {}).items()}

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
        self.events.put_nowait({"type": "closed"})

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
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        if codec is not None:
            capabilities = RTCRtpSender.getCapabilities(track.kind).codecs
            transceiver.setCodecPreferences(
                [c for c in capabilities if c.mimeType.lower() == codec.lower()
                 and c.parameters.get("packetization-mode", "1") == "1"]
                + [c for c in capabilities if c.mimeType.lower().endswith("/rtx")])
        await self.pc.setLocalDescription(await self.pc.createOffer())  # assigns the mid
        self._publish[transceiver.mid] = {"source": source, "label": label}
        answer = await self.negotiate()
        if transceiver.mid not in self._published:
            raise ClientError("rejected", answer.get("rejected", {}).get(transceiver.mid, "not published"))
        return self._published[transceiver.mid]

    async def unpublish(self, track_id: str) -> None:
        mid = next(m for m, t in self._published.items() if t == track_id)
        self._publish.pop(mid, None)
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

    def subscribed_mid(self, track_id: str) -> str | None:
        return next((m for m, t in self._subscribe.items() if t == track_id), None)

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
        if self._session is not None:
            await self._session.close()


def _recording_of(notice: dict) -> dict | None:
    """The room's recording after a `recording` notice: None once it stopped or failed."""
    if notice.get("state") != "started":
        return None
    return {"id": notice.get("id"), "by": notice.get("by"), "started_at": notice.get("started_at")}
