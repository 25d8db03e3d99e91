"""The media plane: connections, routers, producers and consumers. Knows nothing of rooms."""

from .aiortc_hook import pin_host_addresses
from .batch_times import FANOUT_BATCHES, BatchTimes
from .connection import Connection, Negotiation, NegotiationError, OfferedMedia, parse_offer
from .consumer import Consumer, RtpConsumer
from .producer import Producer
from .router import Router
from .traffic import Traffic

__all__ = ["FANOUT_BATCHES", "BatchTimes", "Connection", "Consumer", "Negotiation", "NegotiationError",
           "OfferedMedia", "Producer", "Router", "RtpConsumer", "Traffic", "parse_offer", "pin_host_addresses"]
