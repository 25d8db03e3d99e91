"""The program compositor, as it runs inside its own process.

Encoded frames come in (from the room's producers, untouched); each track is decoded
as it arrives and only its newest picture is kept. On its own clock the compositor
draws the scene into a YUV canvas with numpy, encodes it with libx264 (no B-frames,
zerolatency, a keyframe at every segment start), mixes the scene's microphones into
AAC, and cuts both into fMP4 parts of exactly `part_frames` frames. A camera that stops
keeps its last picture for `stale_after` seconds, then shows a placeholder: nothing
that a publisher does can stall the program.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import av
import cv2
import numpy as np

from . import fmp4
from .program import ProgramFormat
from .scene import Scene, Tile

log = logging.getLogger("telemed.compositor")

AAC_FRAME = 1024
SAMPLE_RATE = fmp4.AUDIO_TIMESCALE
MAX_AUDIO_BACKLOG = SAMPLE_RATE // 2   # samples kept per microphone; older ones are dropped
AUDIO_PREBUFFER = 2 * AAC_FRAME        # a microphone that ran dry waits for this much
BLACK, GREY, WHITE, NEUTRAL = 16, 48, 235, 128
DECODERS = {"vp8": "vp8", "h264": "h264"}

Emit = Callable[[tuple], None]


class _Picture:
    """A track's newest decoded picture, and its scaled copy for the tile it fills."""
    __slots__ = ("frame", "arrived", "scaled", "scaled_for")

    def __init__(self, frame: av.VideoFrame, arrived: float) -> None:
        self.frame, self.arrived = frame, arrived
        self.scaled: tuple[np.ndarray, np.ndarray, np.ndarray, int, int] | None = None
        self.scaled_for: tuple[int, int] | None = None


class _Microphone:
    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("opus", "r")
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.samples = np.zeros(0, np.float32)
        self.buffering = True

    def take(self, count: int) -> np.ndarray | None:
        if self.buffering:
            if len(self.samples) < AUDIO_PREBUFFER:
                return None
            self.buffering = False
        out, self.samples = self.samples[:count], self.samples[count:]
        if len(out) < count:
            self.buffering = True
        return out


class Compositor:
    def __init__(self, program: ProgramFormat, emit: Emit, clock: Callable[[], float] = time.monotonic) -> None:
        self.program = program
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()   # decoding (reader thread) vs drawing (clock thread)
        self.scene = Scene(program.width, program.height)
        self._pictures: dict[str, _Picture] = {}
        self._decoders: dict[str, av.CodecContext] = {}
        self._microphones: dict[str, _Microphone] = {}
        self.frames_decoded = 0
        self.decode_errors = 0
        self._open_encoders()
        self._start = clock()
        self.wall_start = time.time()   # for PROGRAM-DATE-TIME only
        self._next_frame = 0            # index of the next program frame to draw
        self._next_audio = 0            # index of the next AAC frame to mix
        self._part = 0                  # index of the part being filled
        self._audio: list[bytes] = []
        self._audio_base = 0            # decode time (in AAC frames) of self._audio[0]
        self.parts_emitted = 0

    # --- set-up ---
    def _open_encoders(self) -> None:
        p = self.program
        self.renditions = [Rendition(w, h, bitrate, p) for w, h, bitrate in p.renditions]
        audio = av.CodecContext.create("aac", "w")
        audio.sample_rate, audio.layout, audio.format = SAMPLE_RATE, "mono", "fltp"
        audio.time_base = Fraction(1, SAMPLE_RATE)
        audio.bit_rate = p.audio_bitrate
        audio.flags |= av.codec.context.Flags.global_header
        audio.open()
        self._audio_encoder = audio
        self.audio_track = fmp4.AudioTrack(bytes(audio.extradata))

    def init_segments(self) -> list[tuple[bytes, str]]:
        """(init segment, CODECS) of each rendition."""
        return [(fmp4.init_segment(r.track, self.audio_track), f"{r.track.codec},{self.audio_track.codec}")
                for r in self.renditions]

    def set_scene(self, scene: Scene) -> None:
        self.scene = scene

    # --- media in (reader thread) ---
    def video(self, track: str, codec: str, data: bytes) -> None:
        decoder = self._decoders.get(track)
        if decoder is None:
            name = DECODERS.get(codec)
            if name is None:
                return
            decoder = self._decoders[track] = av.CodecContext.create(name, "r")
        try:
            pictures = decoder.decode(av.Packet(data))
        except (av.error.FFmpegError, ValueError):
            self.decode_errors += 1
            self._emit(("keyframe", track))   # garbage or a lost reference: start over cleanly
            return
        for picture in pictures:
            self.frames_decoded += 1
            with self._lock:
                self._pictures[track] = _Picture(picture, self._clock())

    def audio(self, track: str, data: bytes) -> None:
        mic = self._microphones.get(track)
        if mic is None:
            mic = self._microphones[track] = _Microphone()
        try:
            decoded = mic.decoder.decode(av.Packet(data))
            chunks = [f.to_ndarray().reshape(-1) for d in decoded for f in mic.resampler.resample(d)]
        except (av.error.FFmpegError, ValueError):
            self.decode_errors += 1
            return
        if chunks:
            with self._lock:
                mic.samples = np.concatenate([mic.samples, *chunks])[-MAX_AUDIO_BACKLOG:]

    def forget(self, track: str) -> None:
        """The track is gone: its decoder goes; its last picture stays until it is stale."""
        self._decoders.pop(track, None)
        with self._lock:
            self._microphones.pop(track, None)

    # --- the program clock ---
    def tick(self) -> float:
        """Draw, mix and cut whatever is due now; returns seconds until the next frame."""
        p = self.program
        elapsed = self._clock() - self._start
        due = int(elapsed * p.fps)
        while self._next_frame <= due:
            n = self._next_frame
            # Behind (a slow machine)? Skip frames, but never one that starts a part.
            if n == due or n % p.part_frames == 0:
                self._encode_video(n)
            self._next_frame += 1
        audio_due = int(elapsed * SAMPLE_RATE / AAC_FRAME) - 1
        while self._next_audio <= audio_due:
            self._encode_audio()
        self._cut_parts()
        return max(0.0, (self._next_frame / p.fps) - (self._clock() - self._start))

    def _encode_video(self, n: int) -> None:
        frame = av.VideoFrame.from_ndarray(self.draw(), format="yuv420p")
        keyframe = n % (self.program.part_frames * self.program.segment_parts) == 0
        for rendition in self.renditions:
            rendition.encode(frame, n, keyframe)

    def _encode_audio(self) -> None:
        mix = np.zeros(AAC_FRAME, np.float32)
        mixed = set(self.scene.audio)
        with self._lock:
            for track, mic in self._microphones.items():
                chunk = mic.take(AAC_FRAME)
                if chunk is not None and track in mixed:  # a muted microphone is drained, unheard
                    mix[:len(chunk)] += chunk
        frame = av.AudioFrame.from_ndarray(np.clip(mix, -1, 1).reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, self._next_audio * AAC_FRAME
        self._next_audio += 1
        for packet in self._audio_encoder.encode(frame):
            self._audio.append(bytes(packet))

    def _cut_parts(self) -> None:
        """Emit each part whose video and audio are complete."""
        p = self.program
        while True:
            end = (self._part + 1) * p.part_frames               # first frame of the next part
            end_audio = -(-end * SAMPLE_RATE // (p.fps * AAC_FRAME))  # first AAC frame at or after it
            if self._next_frame < end or self._audio_base + len(self._audio) < end_audio:
                return
            tick = fmp4.VIDEO_TIMESCALE // p.fps
            count = end_audio - self._audio_base
            audio, self._audio = self._audio[:count], self._audio[count:]
            audio_run = fmp4.TrackRun(fmp4.AUDIO_TRACK, self._audio_base * AAC_FRAME,
                                      [fmp4.Sample(a, AAC_FRAME) for a in audio])
            self._audio_base = end_audio
            independent = self._part % p.segment_parts == 0
            last = self._part % p.segment_parts == p.segment_parts - 1
            for index, rendition in enumerate(self.renditions):
                video = rendition.take(end)
                samples = [fmp4.Sample(data, ((video[i + 1][0] if i + 1 < len(video) else end) - n) * tick, key)
                           for i, (n, data, key) in enumerate(video)]
                runs = [fmp4.TrackRun(fmp4.VIDEO_TRACK, (video[0][0] if video else end) * tick, samples), audio_run]
                self._emit(("part", index, self._part, fmp4.fragment(self._part + 1, runs),
                            self._part * p.part_duration, p.part_duration, independent, independent, last))
            self._part += 1
            self.parts_emitted += 1

    # --- drawing ---
    def draw(self) -> np.ndarray:
        """The scene as one yuv420p picture, in PyAV's (height * 3/2, width) layout."""
        w, h = self.program.width, self.program.height
        y = np.full((h, w), BLACK, np.uint8)
        u = np.full((h // 2, w // 2), NEUTRAL, np.uint8)
        v = np.full((h // 2, w // 2), NEUTRAL, np.uint8)
        scene = self.scene
        sx, sy = w / scene.width, h / scene.height
        now = self._clock()
        if not scene.tiles:
            _text(y, "waiting for cameras", 0, 0, w, h, w / 1280)
        for tile in scene.tiles:
            x0, y0 = int(tile.x * sx) & ~1, int(tile.y * sy) & ~1
            tw, th = max(2, int(tile.w * sx) & ~1), max(2, int(tile.h * sy) & ~1)
            tw, th = min(tw, w - x0), min(th, h - y0)
            if tw < 2 or th < 2:
                continue
            with self._lock:
                picture = self._pictures.get(tile.track)
            if picture is None or now - picture.arrived > self.program.stale_after:
                y[y0:y0 + th, x0:x0 + tw] = GREY
                _text(y, "no signal", x0, y0, tw, th, tw / 1280 * 1.5)
            else:
                py, pu, pv, ox, oy = self._scaled(picture, tw, th)
                ph, pw = py.shape
                y[y0 + oy:y0 + oy + ph, x0 + ox:x0 + ox + pw] = py
                cy, cx = (y0 + oy) // 2, (x0 + ox) // 2
                u[cy:cy + ph // 2, cx:cx + pw // 2] = pu
                v[cy:cy + ph // 2, cx:cx + pw // 2] = pv
            _label(y, u, v, tile, x0, y0, tw, th)
        return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)

    def _scaled(self, picture: _Picture, tw: int, th: int):
        """The picture fitted into tw x th (aspect kept), scaled once per new picture."""
        if picture.scaled is None or picture.scaled_for != (tw, th):
            fw, fh = picture.frame.width, picture.frame.height
            scale = min(tw / fw, th / fh)
            pw, ph = max(2, int(fw * scale) & ~1), max(2, int(fh * scale) & ~1)
            flat = picture.frame.reformat(pw, ph, "yuv420p").to_ndarray().reshape(-1)
            py = flat[:pw * ph].reshape(ph, pw)
            pu = flat[pw * ph:pw * ph * 5 // 4].reshape(ph // 2, pw // 2)
            pv = flat[pw * ph * 5 // 4:].reshape(ph // 2, pw // 2)
            picture.scaled = (py, pu, pv, ((tw - pw) // 2) & ~1, ((th - ph) // 2) & ~1)
            picture.scaled_for = (tw, th)
        return picture.scaled


def _text(y: np.ndarray, text: str, x0: int, y0: int, w: int, h: int, scale: float) -> None:
    scale = max(0.4, scale)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(y, text, (x0 + max(0, (w - tw) // 2), y0 + (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                scale, WHITE, 1, cv2.LINE_AA)


def _label(y: np.ndarray, u: np.ndarray, v: np.ndarray, tile: Tile, x0: int, y0: int, w: int, h: int) -> None:
    """The name on a dark band along the tile's bottom edge."""
    if not tile.label:
        return
    band = min(h, max(14, h // 12)) & ~1
    top = y0 + h - band
    y[top:y0 + h, x0:x0 + w] = BLACK
    u[top // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2] = NEUTRAL
    v[top // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2] = NEUTRAL
    cv2.putText(y, tile.label[:48], (x0 + 4, y0 + h - band // 4), cv2.FONT_HERSHEY_SIMPLEX,
                band / 30, WHITE, 1, cv2.LINE_AA)


class Rendition:
    """One rung of the ladder: its own libx264 encoder, fed the drawn picture (scaled)."""

    def __init__(self, width: int, height: int, bitrate: int, program: ProgramFormat) -> None:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base = Fraction(1, fmp4.VIDEO_TIMESCALE)
        encoder.framerate = Fraction(program.fps)
        encoder.gop_size = program.part_frames * program.segment_parts
        encoder.max_b_frames = 0
        encoder.bit_rate = bitrate
        encoder.options = {"preset": program.x264_preset, "tune": "zerolatency", "sc_threshold": "0",
                           "rc-lookahead": "0", "keyint_min": str(encoder.gop_size)}
        encoder.flags |= av.codec.context.Flags.global_header  # SPS/PPS for the init segment
        encoder.open()
        sets = fmp4.parameter_sets(bytes(encoder.extradata or b""))
        if sets is None:
            raise RuntimeError("libx264 gave no SPS/PPS")
        self.encoder, self.fps = encoder, program.fps
        self.width, self.height, self.bitrate = width, height, bitrate
        self.track = fmp4.VideoTrack(width, height, *sets)
        self._pending: list[tuple[int, bytes, bool]] = []  # (frame index, AVCC bytes, keyframe)

    def encode(self, picture: av.VideoFrame, n: int, keyframe: bool) -> None:
        frame = picture if picture.width == self.width else picture.reformat(self.width, self.height)
        frame.pts = n * fmp4.VIDEO_TIMESCALE // self.fps
        frame.time_base = Fraction(1, fmp4.VIDEO_TIMESCALE)
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        for packet in self.encoder.encode(frame):
            self._pending.append((n, fmp4.avcc_sample(bytes(packet)), packet.is_keyframe))

    def take(self, end: int) -> list[tuple[int, bytes, bool]]:
        """The encoded frames before frame `end`."""
        out = [v for v in self._pending if v[0] < end]
        self._pending = self._pending[len(out):]
        return out
