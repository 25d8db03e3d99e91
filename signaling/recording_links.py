"""Signed links to a recording's tracks: what a <video> opens without a bearer header.

One signer (``Server.recording_links``, conference/signed_urls.py) with its own TTL
(setting ``recording_link_ttl``); a link names one track of one recording, for one
person, until it expires.
"""

from __future__ import annotations

from conference.signed_urls import UrlSigner


def track_object(recording_id: str, track_id: str) -> str:
    """What a track link's signature covers (besides room, who and expiry)."""
    return f"recording/{recording_id}/{track_id}"


def track_links(signer: UrlSigner, room: str, manifest: dict, who: str) -> dict[str, str]:
    base = f"/api/rooms/{room}/recordings/{manifest['id']}/tracks"
    return {t["id"]: f"{base}/{t['id']}?{signer.query(room, track_object(manifest['id'], t['id']), who)}"
            for t in manifest.get("tracks", [])}


def with_links(signer: UrlSigner, room: str, manifest: dict, who: str) -> dict:
    """The manifest as its reader gets it: each track carries its signed ``url``."""
    links = track_links(signer, room, manifest, who)
    return {**manifest, "tracks": [{**t, "url": links[t["id"]]} for t in manifest.get("tracks", [])],
            "links_expire_in": signer.ttl}
