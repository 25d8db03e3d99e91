"""Python client for the telemedicine SFU: devices (e.g. an ambulance pushing ECG and
video) and tests. Speaks only the public HTTP/WebSocket API (docs/signaling.md)."""

from .client import Client, ClientError, create_room, fetch_token

__all__ = ["Client", "ClientError", "create_room", "fetch_token"]
