"""A room's media switchboard: the producers in it and who consumes them.

Remote subscribers, the recorder and the HLS packager all attach a Consumer to a
producer the same way (`Consumer(producer).attach()`); the router does not care
which is which.
"""

from __future__ import annotations

from collections.abc import Callable

from .producer import Producer


class Router:
    def __init__(self) -> None:
        self.producers: dict[str, Producer] = {}
        self._listeners: list[Callable[[str, Producer], None]] = []

    def on_change(self, listener: Callable[[str, Producer], None]) -> None:
        """listener(event, producer) with event "added" or "removed"."""
        self._listeners.append(listener)

    def add(self, producer: Producer) -> None:
        self.producers[producer.id] = producer
        self._emit("added", producer)

    def remove(self, producer: Producer) -> None:
        if self.producers.pop(producer.id, None) is not None:
            producer.close()
            self._emit("removed", producer)

    def get(self, producer_id: str) -> Producer | None:
        return self.producers.get(producer_id)

    def close(self) -> None:
        for producer in list(self.producers.values()):
            self.remove(producer)

    def _emit(self, event: str, producer: Producer) -> None:
        for listener in list(self._listeners):
            listener(event, producer)
