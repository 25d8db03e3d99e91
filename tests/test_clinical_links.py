"""Renewing a shared object's signed links with the room token."""

from __future__ import annotations

import aiohttp

from tests.clinical_peers import PASSWORD, bundled, close, join


async def get(url: str, token: str | None = None) -> tuple[int, dict | bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as r:
            body = await r.read()
            return r.status, await r.json() if r.content_type == "application/json" else body


async def test_links_are_renewed_for_the_token_holder_only(server):
    await server.create_room("links", PASSWORD)
    await server.create_room("other", PASSWORD)
    sender = await join(server, "links", "Dr A")
    try:
        notice = await sender.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
        base = f"{server.url}/api/rooms/links/objects/{notice['sha256']}"
        token = await server.mint("links", "viewer", "Trainee", identity="trainee-1")

        status, links = await get(f"{base}/links", token)
        assert status == 200 and links["expires_in"] == 300
        assert "who=trainee-1" in links["url"] and links["preview_url"].startswith(
            f"/api/rooms/links/objects/{notice['sha256']}/preview.png?")
        status, png = await get(server.url + links["preview_url"] + "&frame=0")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"

        # A signed link cannot mint new links; other rooms' tokens and unknown objects fail.
        assert (await get(f"{base}/links?{notice['url'].split('?')[1]}"))[0] == 401
        assert (await get(f"{base}/links", await server.token("other", PASSWORD)))[0] == 403
        assert (await get(f"{server.url}/api/rooms/links/objects/{'0' * 64}/links", token))[0] == 404
    finally:
        await close(sender)
