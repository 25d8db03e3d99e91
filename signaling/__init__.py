"""The face of the server: HTTP, WebSocket, WHIP/WHEP, metrics, CLI."""
