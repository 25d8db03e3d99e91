"""The media plane: connections, routers, producers and consumers. Knows nothing of rooms."""

from .aiortc_hook import host_addresses, pin_host_addresses
from .connection import Connection, Negotiation, NegotiationError, OfferedMedia, parse_offer
from .consumer import Consumer, RtpConsumer
from .media_port import MediaPort
from .producer import Producer
from .router import Router

__all__ = ["Connection", "Consumer", "MediaPort", "Negotiation", "NegotiationError", "OfferedMedia",
           "Producer", "Router", "RtpConsumer", "host_addresses", "parse_offer", "pin_host_addresses"]
