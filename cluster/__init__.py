"""Several nodes, one service: each node's heartbeat and load in Redis, and rooms placed on
nodes under leases (docs/multinode.md). Imports nothing of ours."""

from cluster.cpu_meter import CpuMeter
from cluster.node_info import NodeInfo
from cluster.node_registry import NodeRegistry
from cluster.room_leases import RoomLeases
from cluster.seat_tickets import SeatTickets

__all__ = ["CpuMeter", "NodeInfo", "NodeRegistry", "RoomLeases", "SeatTickets"]
