"""A program that is one H264 track (an OR encoder over WHIP, say) goes out as the
publisher sent it: its frames are cut into LL-HLS parts without decoding or encoding.
The publisher's Opus goes along as it is (fMP4 carries Opus; hls.js plays it).

Parts end where the next frame would pass the part target, and at every keyframe; a
keyframe starts a new segment once the current one is a segment long. So the timing
follows the publisher's keyframes, and a long GOP makes long segments.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import av

from recorder.frame_assembler import Frame

from . import fmp4
from .program import ProgramFormat

Emit = Callable[[tuple], None]
OPUS_PACKET = 960  # 20 ms at 48 kHz: the duration of an Opus packet we cannot time otherwise


def _unwrap(last: int | None, timestamp: int) -> int:
    """A 32-bit RTP timestamp extended past wrap-arounds, relative to the last one."""
    if last is None:
        return timestamp
    delta = (timestamp - last) & 0xFFFFFFFF
    return last + (delta - (1 << 32) if delta >= 1 << 31 else delta)


class Passthrough:
    def __init__(self, program: ProgramFormat, emit: Emit, clock: Callable[[], float] = time.monotonic) -> None:
        self.program = program
        self._emit = emit
        self._clock = clock
        self._part_target = round(program.part_target * fmp4.VIDEO_TIMESCALE)
        self._segment_target = round(program.segment_duration * fmp4.VIDEO_TIMESCALE)
        self._started_at: float | None = None     # monotonic time of the first keyframe
        self._video_ts: int | None = None         # extended RTP timestamp of the held frame
        self._video_base = 0                      # extended RTP timestamp at decode time 0
        self._held: Frame | None = None
        self._video: list[fmp4.Sample] = []
        self._video_start = 0                     # decode time of self._video[0]
        self._part_duration = 0
        self._segment_duration = 0
        self._starts_segment = True
        self._audio_ts: int | None = None
        self._audio_base: int | None = None       # audio RTP timestamp at decode time 0
        self._audio: list[tuple[int, bytes]] = []  # (decode time, Opus packet)
        self._audio_next = 0                      # decode time the next audio run must start at
        self._index = 0
        self.frames = 0

    # --- media in ---
    def video(self, frame: Frame) -> None:
        if self._started_at is None:
            if not frame.keyframe or not self._open(frame):
                return
        ts = _unwrap(self._video_ts, frame.timestamp)
        if self._held is not None:
            duration = ts - self._video_ts
            if 0 < duration <= 2 * fmp4.VIDEO_TIMESCALE:
                self._add(self._held, duration)
            else:  # a jump in the publisher's clock: keep the cadence, count it as one frame
                self._add(self._held, fmp4.VIDEO_TIMESCALE // self.program.fps)
                self._video_base += duration - fmp4.VIDEO_TIMESCALE // self.program.fps
        self._held, self._video_ts = frame, ts
        self.frames += 1

    def audio(self, frame: Frame) -> None:
        if self._started_at is None:
            return  # the program starts with the first keyframe
        ts = _unwrap(self._audio_ts, frame.timestamp)
        self._audio_ts = ts
        if self._audio_base is None:  # lined up with the video by arrival time
            self._audio_base = ts - round((self._clock() - self._started_at) * fmp4.AUDIO_TIMESCALE)
            self._audio_next = ts - self._audio_base
        if ts - self._audio_base >= self._audio_next:  # late packets would overlap a sent part
            self._audio.append((ts - self._audio_base, frame.data))

    # --- set-up ---
    def _open(self, frame: Frame) -> bool:
        sets = fmp4.parameter_sets(frame.data)
        if sets is None:
            return False  # a keyframe without SPS/PPS cannot start the program
        try:
            decoder = av.CodecContext.create("h264", "r")
            pictures = decoder.decode(av.Packet(frame.data)) + decoder.decode(None)
        except (av.error.FFmpegError, ValueError):
            return False
        if not pictures:
            return False
        width, height = pictures[0].width, pictures[0].height
        video = fmp4.VideoTrack(width, height, *sets)
        audio = fmp4.OpusTrack()
        self._started_at = self._clock()
        self._video_base = frame.timestamp
        self._emit(("init", 0, fmp4.init_segment(video, audio), f"{video.codec},{audio.codec}", time.time()))
        return True

    # --- parts ---
    def _add(self, frame: Frame, duration: int) -> None:
        if self._video and (frame.keyframe or self._part_duration + duration > self._part_target):
            self._flush()
            if frame.keyframe and self._segment_duration >= self._segment_target:
                self._starts_segment = True
        if not self._video:
            self._video_start = self._video_ts - self._video_base  # the held frame's decode time
        self._video.append(fmp4.Sample(fmp4.avcc_sample(frame.data), duration, frame.keyframe))
        self._part_duration += duration

    def _flush(self) -> None:
        end = self._video_start + self._part_duration       # in 90 kHz
        end_audio = end * fmp4.AUDIO_TIMESCALE // fmp4.VIDEO_TIMESCALE
        audio = [a for a in self._audio if a[0] < end_audio]
        self._audio = self._audio[len(audio):]
        runs = [fmp4.TrackRun(fmp4.VIDEO_TRACK, self._video_start, self._video)]
        if audio:
            times = [t for t, _ in audio] + [self._audio[0][0] if self._audio else audio[-1][0] + OPUS_PACKET]
            samples = [fmp4.Sample(data, max(1, times[i + 1] - t)) for i, (t, data) in enumerate(audio)]
            runs.append(fmp4.TrackRun(fmp4.AUDIO_TRACK, audio[0][0], samples))
            self._audio_next = times[-1]
        starts = self._starts_segment
        if starts:
            self._segment_duration = 0
        self._segment_duration += self._part_duration
        self._emit(("part", 0, self._index, fmp4.fragment(self._index + 1, runs),
                    self._video_start / fmp4.VIDEO_TIMESCALE, self._part_duration / fmp4.VIDEO_TIMESCALE,
                    self._video[0].keyframe, starts, False))
        self._index += 1
        self._video, self._part_duration, self._starts_segment = [], 0, False
