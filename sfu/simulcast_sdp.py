"""Simulcast in SDP (RFC 8851 `a=rid`, RFC 8853 `a=simulcast`), which aiortc ignores.

We read the layers a publisher offers on an m-line, and write into our answer that we
receive them, with the header extensions that name each layer's packets (rid, and
repaired-rid for its retransmissions) and the m-line (mid): browsers send simulcast
without `a=ssrc` lines, so those extensions are how the SFU learns the SSRCs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
MAX_LAYERS = 4
# Where a browser's send estimate starts (kbit/s; Chromium reads it from the answer's
# fmtp). Its default, 300, is too little to turn on any layer above the lowest, and
# without transport-cc it would take half a minute to climb; it still backs off on loss.
START_BITRATE_KBPS = 1500
# Our web client's names, lowest first; others keep the order they are offered in.
KNOWN_ORDER = ("q", "h", "f")


@dataclass
class SimulcastOffer:
    rids: list[str]                     # lowest quality first
    offered: list[str]                  # as the offer listed them (the answer keeps it)
    extensions: dict[str, int] = field(default_factory=dict)  # uri -> id (mid, rid, repaired-rid)

    @property
    def rid_id(self) -> int:
        return self.extensions.get(RID_URI, 0)

    @property
    def repaired_rid_id(self) -> int:
        return self.extensions.get(REPAIRED_RID_URI, 0)


def _sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _mid(section: list[str]) -> str | None:
    return next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)


def offered_rid_extensions(sdp: str) -> dict[str, dict[str, int]]:
    """The rid and repaired-rid extension ids offered on each video m-line, by mid."""
    found: dict[str, dict[str, int]] = {}
    for section in _sections(sdp)[1:]:
        mid = _mid(section)
        if mid is None or not section[0].startswith("m=video"):
            continue
        for line in section:
            head, _, uri = line[9:].partition(" ") if line.startswith("a=extmap:") else ("", "", "")
            ext_id = head.split("/")[0]
            if uri.strip() in (RID_URI, REPAIRED_RID_URI) and ext_id.isdigit():
                found.setdefault(mid, {})[uri.strip()] = int(ext_id)
    return found


def parse_simulcast(sdp: str) -> dict[str, SimulcastOffer]:
    """The m-lines (by mid) on which the offerer sends simulcast, with their layers."""
    found: dict[str, SimulcastOffer] = {}
    for section in _sections(sdp)[1:]:
        mid = _mid(section)
        rids, order, extensions = [], None, {}
        for line in section:
            if line.startswith("a=rid:"):
                parts = line[6:].split()
                if len(parts) >= 2 and parts[1] == "send" and parts[0].isalnum() and len(parts[0]) <= 16:
                    rids.append(parts[0])
            elif line.startswith("a=simulcast:send "):
                # "q;h;f" or alternatives "q,~x;h": each ';' item is a layer; take its first.
                order = [item.split(",")[0].lstrip("~") for item in line[17:].strip().split(";")]
            elif line.startswith("a=extmap:"):
                head, _, uri = line[9:].partition(" ")
                ext_id = head.split("/")[0]
                if uri.strip() in (RID_URI, REPAIRED_RID_URI, MID_URI) and ext_id.isdigit():
                    extensions[uri.strip()] = int(ext_id)
        if mid is None or order is None:
            continue
        layers = [r for r in order if r in rids]
        if len(layers) < 2 or RID_URI not in extensions:
            continue
        offered = list(layers)
        if all(r in KNOWN_ORDER for r in layers):
            layers.sort(key=KNOWN_ORDER.index)
        found[mid] = SimulcastOffer(layers[:MAX_LAYERS], offered[:MAX_LAYERS], extensions)
    return found


def answer_simulcast(answer: str, accepted: dict[str, SimulcastOffer],
                     rid_extensions: dict[str, dict[str, int]] | None = None) -> str:
    """Our answer, stating on each accepted m-line that we receive its layers.

    `rid_extensions` (offered_rid_extensions of the offer) are accepted on every video
    m-line: Chromium offers a later m-line only the header extensions its bundle has
    negotiated, and refuses its own offer of a simulcast camera added after the first
    negotiation unless rid was among them."""
    rid_extensions = rid_extensions or {}
    if not accepted and not rid_extensions:
        return answer
    out: list[str] = []
    for section in _sections(answer):
        mid = _mid(section) or "" if section and section[0].startswith("m=") else None
        offer = accepted.get(mid) if mid is not None else None
        extensions = offer.extensions if offer is not None else rid_extensions.get(mid or "", {})
        if extensions:
            have = {line.split()[0] for line in section if line.startswith("a=extmap:")}
            section = section + [f"a=extmap:{ext_id} {uri}" for uri, ext_id in sorted(extensions.items())
                                 if f"a=extmap:{ext_id}" not in have]
        if offer is not None:
            extra = [f"a=rid:{rid} recv" for rid in offer.offered]
            extra.append("a=simulcast:recv " + ";".join(offer.offered))
            section = _with_start_bitrate(section) + extra
        out.extend(section)
    return "\r\n".join(line for line in out if line) + "\r\n"


def _with_start_bitrate(section: list[str]) -> list[str]:
    media = {line[9:].split()[0] for line in section if line.startswith("a=rtpmap:")
             and "/rtx/" not in line.lower() and " rtx/" not in line.lower()}
    out, done = [], set()
    for line in section:
        pt = line[7:].split()[0] if line.startswith("a=fmtp:") else None
        if pt in media:
            line += f";x-google-start-bitrate={START_BITRATE_KBPS}"
            done.add(pt)
        out.append(line)
    out += [f"a=fmtp:{pt} x-google-start-bitrate={START_BITRATE_KBPS}" for pt in sorted(media - done)]
    return out
