"""A subscriber's copy of a simulcast track: one layer at a time, switched seamlessly.

It sends one layer (a Producer) through the fan-out step like any RtpConsumer. To
change layer it watches the wanted layer (a LayerProbe, which asks for a keyframe)
while the current one keeps flowing, and switches on that layer's keyframe: the
sequence manager and timestamp mapper continue the stream, the fan-out step
continues VP8 picture id and TL0PICIDX, so the receiver sees one stream whose
resolution changes.

Which level (a layer, and how many of its VP8 temporal layers): the smallest layer
that covers the tile the page shows it in (no tile known: the best), of the layers
that are arriving, within what the subscriber's connection can take
(sfu/bandwidth_allocator.py). Down at once, to a level that fits, when the connection
is congested: a little short of the current layer, its upper temporal layers go
first (the fan-out step leaves their frames out, a lower frame rate at the same
resolution); further short, a lower layer. Up one level at a time after UP_AFTER calm
seconds, the higher level itself being the probe; a step up undone within TRIAL
seconds doubles the wait before the next (up to UP_AFTER_MAX), one that held resets it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .consumer import Consumer, RtpConsumer
from .fanout import ALL_TEMPORAL_LAYERS
from .rtp_packet import RtpPacket
from .vp8_descriptor import picture_ids

if TYPE_CHECKING:
    from .aiortc_hook import MediaTransport
    from .producer import Producer

UP_AFTER = 3.0
UP_AFTER_MAX = 8.0
TRIAL = 4.0            # a step up that held this long worked; undone sooner, it failed
ACTIVE_WITHIN = 2.0    # a layer that sent nothing for this long is not arriving
# The share of a VP8 layer's bit rate that its temporal layers up to each TID take, for
# 1 to 4 temporal layers: libwebrtc's own allocation for its VP8 encoder.
TEMPORAL_SHARES = ((1.0,), (0.6, 1.0), (0.4, 0.6, 1.0), (0.25, 0.4, 0.6, 1.0))
Level = tuple[int, int]  # (layer, highest temporal layer sent)
# A layer "covers" a tile when it is at least this share of the tile's pixels across.
COVERS = 0.9


class LayerProbe(Consumer):
    """Watches one layer for the keyframe its simulcast consumer switches on."""

    live = True  # a stale keyframe is no place to switch to

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
                 rtx_ssrc: int | None = None, rtx_payload_type: int | None = None,
                 abs_send_time_id: int = 0) -> None:
        self.track = track
        self.layers = list(track.layers)
        super().__init__(self.layers[0], transport, ssrc, payload_type, audio_level_id,
                         rtx_ssrc, rtx_payload_type, abs_send_time_id)
        self.target.c.vp8 = track.codec.mime_type.lower() == "video/vp8"
        self.layer = 0          # the layer being sent
        self.wanted = 0         # the layer it is switching to (== layer when settled)
        self.tid = ALL_TEMPORAL_LAYERS  # the highest temporal layer it wants sent
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

    @property
    def temporal_layers(self) -> int:
        """How many VP8 temporal layers the layers carry (1: none), as the fan-out step saw."""
        seen = self.target.c.max_tid
        return 1 if seen == ALL_TEMPORAL_LAYERS or seen >= len(TEMPORAL_SHARES) else seen + 1

    def rate(self, level: Level) -> int:
        """What sending `level` takes, bit/s (a share of its layer by temporal layer)."""
        layer, tid = level
        return int(self.layers[layer].bitrate * TEMPORAL_SHARES[self.temporal_layers - 1][tid])

    @property
    def sending_bitrate(self) -> int:
        return self.rate((self.wanted, min(self.tid, self.temporal_layers - 1)))

    def _levels(self, allowed: list[int]) -> list[Level]:
        """The levels to choose among, lowest first: every layer at its full frame rate;
        below that, fewer temporal layers of the current layer (a little short of it:
        the frame rate goes before the resolution) and of the lowest (nothing else left)."""
        top = self.temporal_layers - 1
        levels = []
        for layer in allowed:
            thinned = layer in (self.wanted, allowed[0])
            levels += [(layer, tid) for tid in range(0 if thinned else top, top)] + [(layer, top)]
        return levels

    def choose(self, now: float, budget: int | None, may_step_up: bool = True) -> tuple[int, bool]:
        """Pick the level for now. `budget`: the bit/s this consumer may take while the
        connection is congested, else None. Returns (the bit rate it is expected to
        take, whether it stepped up)."""
        active = self._active(now)
        if not active:
            return self.sending_bitrate, False
        allowed = [i for i in active if i <= self._tile_limit(active)]
        top = self.temporal_layers - 1
        current = (self.wanted, min(self.tid, top))
        stepped = False
        if self.wanted not in allowed:  # the tile shrank, or the layer stopped arriving
            self.want(max([i for i in allowed if i <= self.wanted], default=allowed[0]), top, now)
        elif budget is not None:
            levels = self._levels(allowed)
            fits = [v for v in levels if v <= current and self.rate(v) <= budget]
            target = fits[-1] if fits else levels[0]
            if target < current and self._trying:
                self._up_after = min(self._up_after * 2, UP_AFTER_MAX)  # the try failed
            self._trying = False
            self._changed_at = now  # congested: not calm
            self.want(*target, now)
        else:
            # up: the full frame rate first, then layer by layer
            higher = [v for v in self._levels(allowed) if v > current and v[1] == top]
            if self._trying and now - self._changed_at >= TRIAL:
                self._trying = False
                self._up_after = UP_AFTER  # it held: the next try may come soon
            if higher and may_step_up and not self._trying and now - self._changed_at >= self._up_after:
                self.want(*higher[0], now)
                self._trying = stepped = True
        return self.sending_bitrate, stepped

    def want(self, index: int, tid: int | None = None, now: float | None = None) -> None:
        """Send layer `index`, with temporal layers up to `tid` (None: all of them)."""
        index = max(0, min(index, len(self.layers) - 1))
        tid = ALL_TEMPORAL_LAYERS if tid is None or tid >= self.temporal_layers - 1 else tid
        if (index, tid) != (self.wanted, self.tid):
            self._changed_at = time.monotonic() if now is None else now
        self.wanted, self.tid = index, tid
        if index == self.layer:
            self.target.c.tid_target = tid
        elif index < self.layer:
            self.target.c.tid_target = 0  # down: the frame rate falls at once, until the switch
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
        self.target.c.tid_target = self.tid
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
        c.npid_dropped = 0  # those were picture ids of the layer before
        c.tid_current = c.tid_target  # a keyframe: every temporal layer can follow it
        super().start(packet)

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        super().close()
