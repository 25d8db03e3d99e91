"""A subscriber's copy of a simulcast track: one layer at a time, switched seamlessly.

It sends one layer (a Producer) through the fan-out step like any RtpConsumer. To
change layer it watches the wanted layer (a LayerProbe, which asks for a keyframe)
while the current one keeps flowing, and switches on that layer's keyframe: the
sequence manager and timestamp mapper continue the stream, the fan-out step
continues VP8 picture id and TL0PICIDX, so the receiver sees one stream whose
resolution changes.

Which layer: the smallest that covers the tile the page shows it in (no tile known:
the best), of the layers that are arriving, within what the subscriber's connection
can take (sfu/bandwidth_allocator.py). Down at once, to a layer that fits, when the
connection is congested; up one layer at a time after UP_AFTER calm seconds, the
higher layer itself being the probe; a step up undone within TRIAL seconds doubles
the wait before the next (up to UP_AFTER_MAX), one that held resets it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .consumer import Consumer, RtpConsumer
from .rtp_packet import RtpPacket
from .vp8_descriptor import picture_ids

if TYPE_CHECKING:
    from .aiortc_hook import MediaTransport
    from .producer import Producer

UP_AFTER = 3.0
UP_AFTER_MAX = 8.0
TRIAL = 4.0            # a step up that held this long worked; undone sooner, it failed
ACTIVE_WITHIN = 2.0    # a layer that sent nothing for this long is not arriving
# A layer "covers" a tile when it is at least this share of the tile's pixels across.
COVERS = 0.9


class LayerProbe(Consumer):
    """Watches one layer for the keyframe its simulcast consumer switches on."""

    def __init__(self, owner: SimulcastConsumer, index: int) -> None:
        super().__init__(owner.layers[index])
        self.owner = owner
        self.index = index

    def send(self, packet: RtpPacket) -> None:
        if packet.keyframe and self.owner.transport.ready:
            self.close()
            self.owner.switch(self.index, packet)


class SimulcastConsumer(RtpConsumer):
    def __init__(self, track: Producer, transport: MediaTransport, ssrc: int,
                 payload_type: int, audio_level_id: int = 0,
                 rtx_ssrc: int | None = None, rtx_payload_type: int | None = None) -> None:
        self.track = track
        self.layers = list(track.layers)
        super().__init__(self.layers[0], transport, ssrc, payload_type, audio_level_id,
                         rtx_ssrc, rtx_payload_type)
        self.target.c.vp8 = track.codec.mime_type.lower() == "video/vp8"
        self.layer = 0          # the layer being sent
        self.wanted = 0         # the layer it is switching to (== layer when settled)
        self.tile: tuple[int, int] | None = None  # device pixels the page shows it in
        self.priority = 0       # higher gets bandwidth first
        self.switches = 0
        self._probe: LayerProbe | None = None
        self._sent_before = False
        self._changed_at = 0.0
        self._up_after = UP_AFTER
        self._trying = False  # the last change was a step up, not yet proven

    @property
    def source(self) -> Producer:
        return self.track

    def attach(self) -> None:
        """Start on the lowest layer that is arriving; choose() takes it up from there."""
        active = self._active(time.monotonic())
        if active:
            self.producer = self.layers[active[0]]
            self.layer = self.wanted = active[0]
        super().attach()

    # --- choosing ---
    def _active(self, now: float) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if now - layer.last_arrival < ACTIVE_WITHIN]

    def _tile_limit(self, active: list[int]) -> int:
        """The smallest arriving layer that covers the tile; the best one if none does."""
        if self.tile is not None:
            width, height = self.tile
            for index in active:
                size = self.layers[index].frame_size
                if size is not None and (size[0] >= width * COVERS or size[1] >= height * COVERS):
                    return index
        return active[-1]

    def choose(self, now: float, budget: int | None, may_step_up: bool = True) -> tuple[int, bool]:
        """Pick the layer for now. `budget`: the bit/s this consumer may take while the
        connection is congested, else None. Returns (the bit rate it is expected to
        take, whether it stepped up)."""
        active = self._active(now)
        if not active:
            return self.layers[self.wanted].bitrate, False
        allowed = [i for i in active if i <= self._tile_limit(active)]
        current = self.wanted
        stepped = False
        if current not in allowed:  # the tile shrank, or the layer stopped arriving
            self.want(max([i for i in allowed if i <= current], default=allowed[0]), now)
        elif budget is not None:
            fits = [i for i in allowed if i <= current and self.layers[i].bitrate <= budget]
            target = fits[-1] if fits else allowed[0]
            if target < current and self._trying:
                self._up_after = min(self._up_after * 2, UP_AFTER_MAX)  # the try failed
            self._trying = False
            self._changed_at = now  # congested: not calm
            self.want(target, now)
        else:
            higher = [i for i in allowed if i > current]
            if self._trying and now - self._changed_at >= TRIAL:
                self._trying = False
                self._up_after = UP_AFTER  # it held: the next try may come soon
            if higher and may_step_up and not self._trying and now - self._changed_at >= self._up_after:
                self.want(higher[0], now)
                self._trying = stepped = True
        return self.layers[self.wanted].bitrate, stepped

    def want(self, index: int, now: float | None = None) -> None:
        index = max(0, min(index, len(self.layers) - 1))
        if index != self.wanted:
            self._changed_at = time.monotonic() if now is None else now
        self.wanted = index
        if self._probe is not None and self._probe.index != index:
            self._probe.close()
            self._probe = None
        if index == self.layer or self._probe is not None:
            return
        if not self.started:
            self._move_to(index, keyframe=True)  # nothing sent yet: no need to wait here
            return
        self._probe = LayerProbe(self, index)
        self._probe.attach()  # asks the layer for a keyframe

    # --- switching ---
    def switch(self, index: int, packet: RtpPacket) -> None:
        """A keyframe of the wanted layer arrived: the stream goes on from it."""
        self._probe = None
        self.restart()  # the old layer's timeline end; out of its fan-out
        self._move_to(index, keyframe=False)
        self.switches += 1
        self.send(packet)

    def _move_to(self, index: int, keyframe: bool) -> None:
        self.producer.remove_consumer(self)
        self.producer = self.layers[index]
        self.layer = index
        # Before the subscriber's DTLS is up, attach() asks once it is (sfu/consumer.py).
        self.producer.add_consumer(self, keyframe=keyframe and self.transport.ready)

    def start(self, packet: RtpPacket) -> None:
        c = self.target.c
        picture_id, tl0 = picture_ids(packet.payload) if c.vp8 else (None, None)
        if self._sent_before:  # continue the descriptor where the last layer left it
            if picture_id is not None:
                c.picture_id_offset = (c.max_picture_id + 1 - picture_id) & 0x7FFF
            if tl0 is not None:
                c.tl0_offset = (c.max_tl0 + 1 - tl0) & 0xFF
        self._sent_before = True
        super().start(packet)

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        super().close()
