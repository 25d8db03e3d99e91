"""The media plane: connections, routers, producers and consumers. Knows nothing of rooms."""

from .aiortc_hook import pin_host_addresses
from .connection import Connection, Negotiation, NegotiationError, OfferedMedia, parse_offer
from .consumer import Consumer, RtpConsumer
from .producer import Producer
from .router import Router

__all__ = ["Connection", "Consumer", "Negotiation", "NegotiationError", "OfferedMedia",
           "Producer", "Router", "RtpConsumer", "parse_offer", "pin_host_addresses"]
