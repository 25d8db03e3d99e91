#!/usr/bin/python3
"""Publish (WHIP) or watch (WHEP) with stock GStreamer's `webrtcbin`, for GStreamer
builds without gst-plugins-rs's `whipclientsink`/`whepsrc` (Debian 12's 1.22, say).

Needs only Debian packages: gstreamer1.0-plugins-{base,good,bad,ugly}, gstreamer1.0-nice,
gstreamer1.0-libav, python3-gi and gir1.2-gst-plugins-bad-1.0; run it with the system
Python (`/usr/bin/python3`), which is the one python3-gi is built for.

    WHIP_TOKEN="$DEVICE_TOKEN" whip.py publish --url http://server:8080/whip/or-1 --codec h264
    WHIP_TOKEN="$VIEWER_TOKEN" whip.py view    --url http://server:8080/whep/or-1 --codec h264

It prints one JSON object per line on stdout, so that a script can follow it: `offer`,
`answer`, `connected`, `frame` (each of a viewer's first 30 decoded frames, then every
30th), `audio`, `error`, `ended`. On SIGINT/SIGTERM or after `--seconds` it ends the
session with DELETE. ICE is not trickled: the offer is sent once gathering is complete
(libnice gathers host candidates in a few milliseconds; with `--stun` it also asks a STUN
server). The offer is webrtcbin's own (`a=setup:actpass`, all m-lines bundled), and the
payloaders keep their default 1400-byte packets.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

# The encoder side of each codec: a live test picture (or, with --source, any
# gst-launch description of raw video), encoded for real-time use with a keyframe a second.
ENCODERS = {
    "vp8": "vp8enc deadline=1 keyframe-max-dist=30 target-bitrate={bitrate}000 ! rtpvp8pay pt=96"
           " ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    # x264's ultrafast preset can only make Constrained Baseline, whatever the profile asked.
    "h264": "x264enc tune=zerolatency speed-preset={preset} key-int-max=30 bitrate={bitrate}"
            " ! video/x-h264,profile={profile}"
            " ! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency"
            " ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000",
}
# Opus at 48 kHz stereo, as WebRTC wants it (the server forwards it untouched).
AUDIO_CAPS = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"
AUDIO_ENCODER = f"audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! {AUDIO_CAPS}"
DEFAULT_AUDIO_SOURCE = "audiotestsrc is-live=true wave=sine"
# What a viewer offers to receive.
RECEIVE_CAPS = {
    "vp8": "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    # Any H264 profile an encoder is likely to send, up to level 5.1: avdec_h264 decodes them all.
    "h264": "; ".join(f"application/x-rtp,media=video,encoding-name=H264,payload={pt},clock-rate=90000,"
                      f"packetization-mode=(string)1,profile-level-id=(string){profile}"
                      for pt, profile in ((102, "42e033"), (104, "4d0033"), (106, "640033"))),
}
PRESETS = {"constrained-baseline": "ultrafast", "main": "veryfast", "high": "veryfast"}
GATHERING_SECONDS = 10
FRAMES_SAID = 30  # a viewer says each of its first decoded frames, then every 30th
DEFAULT_SOURCE = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1"


def no_upnp(webrtc: Gst.Element) -> None:
    """Turn off libnice's UPnP: it looks for a gateway (SSDP multicast) before it calls
    gathering complete, and with none on the link that can hold the offer back for good."""
    ice = webrtc.get_property("ice-agent")
    if ice.__grefcount__ == 1:
        # webrtcbin 1.22 keeps its ICE agent by a floating reference, which PyGObject
        # takes for its own when it wraps the object: give webrtcbin its reference back,
        # or the agent is freed under it when `ice` goes.
        capsule = ctypes.pythonapi.PyCapsule_GetPointer
        capsule.restype, capsule.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        gobject = ctypes.CDLL("libgobject-2.0.so.0")
        gobject.g_object_ref.restype, gobject.g_object_ref.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
        gobject.g_object_ref(capsule(ice.__gpointer__, None))
    ice.get_property("agent").set_property("upnp", False)


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Session:
    """One WHIP or WHEP session: webrtcbin's offer, gathered whole, POSTed; the answer set."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = GLib.MainLoop()
        self.location: str | None = None
        self.frames = 0
        self.failed = False
        self._offered = False
        if args.mode == "publish":
            description = (f"webrtcbin name=webrtc  {args.source} ! videoconvert ! queue ! "
                           f"{ENCODERS[args.codec].format(bitrate=args.bitrate, profile=args.profile, preset=PRESETS[args.profile])}"
                           " ! webrtc.")
            if args.audio:
                description += f"  {args.audio_source} ! {AUDIO_ENCODER} ! webrtc."
            self.pipeline = Gst.parse_launch(description)
            self.webrtc = self.pipeline.get_by_name("webrtc")
        else:
            self.pipeline = Gst.Pipeline.new("viewer")
            self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
            self.pipeline.add(self.webrtc)
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        if args.stun:
            self.webrtc.set_property("stun-server", args.stun)
        no_upnp(self.webrtc)
        if args.mode == "view":
            for caps in [RECEIVE_CAPS[args.codec]] + ([AUDIO_CAPS] if args.audio else []):
                self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                                 Gst.Caps.from_string(caps))
            self.webrtc.connect("pad-added", self._on_incoming_stream)
        # webrtcbin asks for an offer once it is PLAYING and its pads are linked.
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("notify::connection-state", self._on_connection_state)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.stop)
        if self.args.seconds:
            GLib.timeout_add(int(self.args.seconds * 1000), self.stop)
        self.pipeline.set_state(Gst.State.PLAYING)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        say("ended", frames=self.frames)
        return 1 if self.failed else 0

    def stop(self) -> bool:
        if self.location is not None:
            try:
                self._http("DELETE", self.location)
            except (OSError, urllib.error.URLError):
                pass  # the session ends with the connection anyway
            self.location = None
        self.loop.quit()
        return GLib.SOURCE_REMOVE

    def fail(self, why: str) -> None:
        say("error", error=why)
        self.failed = True
        self.stop()

    # -- signalling (webrtcbin's signals come on its own threads; work is moved to the loop) --
    def _on_negotiation_needed(self, webrtc: Gst.Element) -> None:
        if self._offered:
            return  # no renegotiation: one offer per session
        self._offered = True
        index = 0
        while (transceiver := webrtc.emit("get-transceiver", index)) is not None:
            # NACKs (and RTX, where the far end offers it) repair what a lossy link drops.
            transceiver.set_property("do-nack", True)
            index += 1
        promise = Gst.Promise.new_with_change_func(self._on_offer_created, None)
        webrtc.emit("create-offer", None, promise)

    def _on_offer_created(self, promise: Gst.Promise, *_: object) -> None:
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            GLib.idle_add(self.fail, f"webrtcbin made no offer: {reply}")
            return
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())
        GLib.timeout_add_seconds(GATHERING_SECONDS, self._gathering_overdue)

    def _gathering_overdue(self) -> bool:
        if self.location is None and not self.failed:
            # libnice never finishes when it finds no usable address (it skips loopback).
            self.fail(f"ICE gathering did not complete in {GATHERING_SECONDS} s: is a network interface up?")
        return GLib.SOURCE_REMOVE

    def _on_gathering(self, webrtc: Gst.Element, _spec: object) -> None:
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._post_offer)

    def _post_offer(self) -> bool:
        if self.location is not None or self.failed:
            return GLib.SOURCE_REMOVE
        offer = self.webrtc.get_property("local-description").sdp.as_text()
        if "a=candidate:" not in offer:
            self.fail("ICE gathering found no address to offer (libnice skips loopback)")
            return GLib.SOURCE_REMOVE
        say("offer", sdp=offer)
        try:
            status, headers, body = self._http("POST", self.args.url, offer.encode(), "application/sdp")
        except (OSError, urllib.error.URLError) as exc:
            self.fail(f"POST {self.args.url}: {exc}")
            return GLib.SOURCE_REMOVE
        if status != 201:
            self.fail(f"POST {self.args.url} answered {status}: {body.decode(errors='replace')}")
            return GLib.SOURCE_REMOVE
        self.location = urllib.parse.urljoin(self.args.url, headers.get("Location", ""))
        say("answer", status=status, location=self.location, sdp=body.decode())
        result, message = GstSdp.SDPMessage.new_from_text(body.decode())
        if result != GstSdp.SDPResult.OK:
            self.fail("the answer is not SDP")
            return GLib.SOURCE_REMOVE
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        return GLib.SOURCE_REMOVE

    def _http(self, method: str, url: str, body: bytes | None = None,
              content_type: str | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.args.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def _on_connection_state(self, webrtc: Gst.Element, _spec: object) -> None:
        state = webrtc.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            GLib.idle_add(say, "connected")  # None: once
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            GLib.idle_add(self.fail, "the connection failed")

    def _on_error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        self.fail(f"{message.src.get_name()}: {error.message} ({debug})")

    # -- the viewer: decode what arrives and count the frames --
    def _on_incoming_stream(self, _webrtc: Gst.Element, pad: Gst.Pad) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        decoder = Gst.ElementFactory.make("decodebin")
        decoder.connect("pad-added", self._on_decoded_pad)
        self.pipeline.add(decoder)
        decoder.sync_state_with_parent()
        pad.link(decoder.get_static_pad("sink"))

    def _on_decoded_pad(self, _decoder: Gst.Element, pad: Gst.Pad) -> None:
        video = pad.get_current_caps().to_string().startswith("video/")
        sink = Gst.parse_bin_from_description(self.args.sink if video else self.args.audio_sink, True)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        pad.add_probe(Gst.PadProbeType.BUFFER, self._on_frame if video else self._on_first_sound)

    def _on_first_sound(self, pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        structure = pad.get_current_caps().get_structure(0)
        say("audio", rate=structure.get_value("rate"), channels=structure.get_value("channels"))
        return Gst.PadProbeReturn.REMOVE

    def _on_frame(self, pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        self.frames += 1
        if self.frames <= FRAMES_SAID or self.frames % FRAMES_SAID == 0:
            structure = pad.get_current_caps().get_structure(0)
            say("frame", n=self.frames, width=structure.get_value("width"), height=structure.get_value("height"))
        return Gst.PadProbeReturn.OK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("publish", "view"))
    parser.add_argument("--url", required=True, help="the WHIP (publish) or WHEP (view) endpoint")
    parser.add_argument("--token", default=os.environ.get("WHIP_TOKEN"),
                        help="a device (publish) or viewer (view) token (default: $WHIP_TOKEN, which, "
                             "unlike an argument, other users of the machine cannot read in the process list)")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="vp8")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="raw video, as a gst-launch description")
    parser.add_argument("--audio", action="store_true", help="also send (publish) or take (view) Opus audio")
    parser.add_argument("--audio-source", default=DEFAULT_AUDIO_SOURCE, help="raw audio, as a gst-launch description")
    parser.add_argument("--sink", default="fakesink sync=false",
                        help="where decoded video goes (view), e.g. 'videoconvert ! autovideosink'")
    parser.add_argument("--audio-sink", default="fakesink sync=false",
                        help="where decoded audio goes (view), e.g. 'audioconvert ! autoaudiosink'")
    parser.add_argument("--profile", choices=sorted(PRESETS), default="constrained-baseline",
                        help="H264 profile (publish); every WebRTC viewer decodes Constrained Baseline")
    parser.add_argument("--bitrate", type=int, default=1500, help="kbit/s (publish)")
    parser.add_argument("--seconds", type=float, default=0, help="end the session after this long (0: never)")
    parser.add_argument("--stun", help="stun://host:port, for a server behind NAT")
    args = parser.parse_args()
    if not args.token:
        parser.error("give the token in $WHIP_TOKEN (or --token)")
    Gst.init(None)
    return Session(args).run()


if __name__ == "__main__":
    sys.exit(main())
