"""STUN/TURN servers as RFC 9725 `Link: rel="ice-server"` headers, so that WHIP/WHEP
clients behind NAT learn them from the 201 (as browsers learn them from `joined`)."""

from __future__ import annotations


def _quoted(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_server_links(servers: list[dict]) -> list[str]:
    links = []
    for server in servers:
        urls = server.get("urls", [])
        for url in [urls] if isinstance(urls, str) else urls:
            link = f'<{url}>; rel="ice-server"'
            if "username" in server:
                link += f"; username={_quoted(server['username'])}"
            if "credential" in server:
                link += f"; credential={_quoted(server['credential'])}; credential-type=\"password\""
            links.append(link)
    return links
