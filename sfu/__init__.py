"""The media plane: connections, routers, producers and consumers. Knows nothing of rooms."""

from .aiortc_hook import host_addresses, pin_host_addresses
from . import batch_times
from .codec import Codec
from .connection import Connection, Negotiation, NegotiationError, NoMediaPort, OfferedMedia, parse_offer
from .consumer import Consumer, RtpConsumer
from .media_port import MediaPort
from .port_range import PortRange
from .producer import Producer
from .router import Router
from .traffic import Traffic

__all__ = ["Codec", "Connection", "Consumer", "MediaPort", "Negotiation",
           "NegotiationError", "NoMediaPort", "OfferedMedia", "PortRange", "Producer",
           "Router", "RtpConsumer", "Traffic", "batch_times",
           "host_addresses", "parse_offer", "pin_host_addresses"]
