"""Password login limits that hold under concurrency.

Every password check first takes a reservation from the LoginLimiter, which counts it as a
failure *before* the slow hash runs and takes it back only if the password was right. So
300 guesses sent at once cannot all slip past a limit that only saw failures afterwards.

Three failure counters, each a sliding window:
- per address and room: a few typos lock one person out of one room for a minute, and an
  attacker cannot lock a room for everyone else this way;
- per address, across rooms: guessing many room names from one address;
- per room, across addresses: many addresses guessing one room lock that room's password
  login. Addresses that logged into the room recently are exempt, so the people already in a
  consult can rejoin; newcomers need another credential (an invite) until the window passes.

And two caps on checks in flight, per address and per room: the excess is refused at once
instead of queueing for the hash pool, and counted as a failure until a login from that
address succeeds (people behind one NAT may log in at the same moment; an attacker's burst
never does).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


class Throttled(Exception):
    """Refused without checking the password; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after) + 1)
        self.message = message


class SlidingWindow:
    """At most ``limit`` events per key in any ``seconds``; memory bounded by ``max_keys``.

    Keys whose last event left the window are dropped, and beyond ``max_keys`` the least
    recently active keys are forgotten. Forgetting favours an attacker only after they have
    spent ``max_keys`` events to do it.
    """

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float],
                 max_keys: int = 100_000) -> None:
        if limit < 1 or seconds <= 0 or max_keys < 1:
            raise ValueError("limit, seconds and max_keys must be positive")
        self.limit = limit
        self._seconds = seconds
        self._clock = clock
        self._max_keys = max_keys
        # Ordered by last event, oldest first, so stale keys are always at the front.
        self._events: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def count(self, key: Hashable) -> int:
        self._prune()
        times = self._events.get(key)
        if times is None:
            return 0
        cutoff = self._clock() - self._seconds
        while times and times[0] <= cutoff:
            times.popleft()
        return len(times)

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` is under its limit again; 0 if it is now."""
        if self.count(key) < self.limit:
            return 0.0
        return self._events[key][-self.limit] + self._seconds - self._clock()

    def add(self, key: Hashable) -> float:
        """Count an event now; returns its time, which ``remove`` takes back."""
        now = self._clock()
        self._prune()
        times = self._events.get(key)
        if times is None:
            times = self._events[key] = deque()
        else:
            self._events.move_to_end(key)
        times.append(now)
        # Only the newest ``limit`` events decide anything; older ones are dead weight.
        while len(times) > self.limit:
            times.popleft()
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)
        return now

    def remove(self, key: Hashable, when: float) -> None:
        times = self._events.get(key)
        if times is not None and when in times:
            times.remove(when)
            if not times:
                del self._events[key]

    def _prune(self) -> None:
        cutoff = self._clock() - self._seconds
        while self._events:
            oldest_key, times = next(iter(self._events.items()))
            if times and times[-1] > cutoff:
                break
            del self._events[oldest_key]


@dataclass(frozen=True)
class LoginLimits:
    per_address_room: int = 5          # failures per address and room, per short window
    short_window: float = 60.0
    per_address: int = 20              # failures per address across rooms, per long window
    per_room: int = 20                 # failures per room across addresses, per long window
    long_window: float = 600.0
    in_flight_per_address: int = 2
    in_flight_per_room: int = 4
    remember_success: float = 12 * 3600.0  # how long a login exempts its address from room limits


@dataclass(frozen=True)
class _Marks:
    """Where one counted failure sits in each window, so that it can be taken back."""

    address_room: float
    address: float
    room: float | None  # None: not counted against the room


class LoginLimiter:
    """Decides whether a password check may run; see the module docstring."""

    def __init__(self, limits: LoginLimits = LoginLimits(),
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.limits = limits
        self._max_keys = max_keys
        self._address_room = SlidingWindow(limits.per_address_room, limits.short_window, clock, max_keys)
        self._address = SlidingWindow(limits.per_address, limits.long_window, clock, max_keys)
        self._room = SlidingWindow(limits.per_room, limits.long_window, clock, max_keys)
        self._in_flight_address: dict[str, int] = {}
        self._in_flight_room: dict[str, int] = {}
        self._known = SlidingWindow(1, limits.remember_success, clock, max_keys)
        # Refusals for too many checks at once, per (address, room). They count as failures,
        # so a burst of guesses locks its sender out; but they never checked a password, so
        # a success from the same address takes them back: people behind one NAT who log in
        # at the same moment are told to retry, not locked out.
        self._refusals: OrderedDict[tuple[str, str], deque[_Marks]] = OrderedDict()

    def known(self, address: str, room: str) -> bool:
        """True if ``address`` logged into ``room`` recently."""
        return self._known.count((address, room)) > 0

    def remember(self, address: str, room: str) -> None:
        """Treat ``address`` as having logged into ``room`` just now (another node saw it)."""
        self._known.add((address, room))

    def reserve(self, address: str, room: str) -> Attempt:
        """A reservation to check one password, or Throttled. Synchronous on purpose: no
        other request can slip in between the checks here and the counting."""
        limits = self.limits
        wait = max(self._address_room.wait((address, room)), self._address.wait(address))
        if wait > 0:
            raise Throttled(wait, "too many failed attempts from your address; try again later")
        if self._in_flight_address.get(address, 0) >= limits.in_flight_per_address:
            self._refused(address, room, against_room=False)
            raise Throttled(1, "another login from your address is still being checked")
        exempt = self.known(address, room)
        if not exempt:
            wait = self._room.wait(room)
            if wait > 0:
                raise Throttled(wait, "too many failed attempts on this room's password; try again "
                                      "later, or join with an invitation")
            if self._in_flight_room.get(room, 0) >= limits.in_flight_per_room:
                # Many addresses at once on one room: that is the attack the room cap is for.
                self._refused(address, room, against_room=True)
                raise Throttled(1, "too many logins to this room at once; try again in a moment")
        # Who waits for a hashing thread first (see PasswordHasher): those who logged into
        # this room lately, then addresses with no failure (or check running) lately.
        priority = 0 if exempt else 1 if self._address.count(address) == 0 else 2
        self._in_flight_address[address] = self._in_flight_address.get(address, 0) + 1
        self._in_flight_room[room] = self._in_flight_room.get(room, 0) + 1
        return Attempt(self, address, room, self._count(address, room, against_room=not exempt), priority)

    def _count(self, address: str, room: str, against_room: bool) -> _Marks:
        return _Marks(self._address_room.add((address, room)), self._address.add(address),
                      self._room.add(room) if against_room else None)

    def _take_back(self, address: str, room: str, marks: _Marks) -> None:
        self._address_room.remove((address, room), marks.address_room)
        self._address.remove(address, marks.address)
        if marks.room is not None:
            self._room.remove(room, marks.room)

    def _refused(self, address: str, room: str, against_room: bool) -> None:
        key = (address, room)
        refusals = self._refusals.get(key)
        if refusals is None:
            # The windows keep no more than this many anyway.
            refusals = self._refusals[key] = deque(maxlen=max(self.limits.per_address, self.limits.per_room))
        else:
            self._refusals.move_to_end(key)
        refusals.append(self._count(address, room, against_room))
        while len(self._refusals) > self._max_keys:
            self._refusals.popitem(last=False)

    def _succeeded(self, address: str, room: str) -> None:
        for marks in self._refusals.pop((address, room), ()):
            self._take_back(address, room, marks)
        self._known.add((address, room))

    def _leave(self, address: str, room: str) -> None:
        for counts, key in ((self._in_flight_address, address), (self._in_flight_room, room)):
            counts[key] -= 1
            if not counts[key]:
                del counts[key]


class Attempt:
    """One reserved password check, in flight until closed: counted as failed unless
    ``succeeded()`` is called. Use it as a context manager, so that it is closed however
    the check ends."""

    def __init__(self, limiter: LoginLimiter, address: str, room: str, marks: _Marks,
                 priority: int) -> None:
        self._limiter = limiter
        self.address = address
        self.room = room
        self.priority = priority
        self._marks = marks
        self._open = True

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._open:
            self._open = False
            self._limiter._leave(self.address, self.room)

    def succeeded(self) -> None:
        """The password was right: take back the reserved failure and the address's refusals
        for checks at once in this room, and remember the address as one that may log into
        this room even while the room is locked."""
        self._limiter._take_back(self.address, self.room, self._marks)
        self._limiter._succeeded(self.address, self.room)

    def withdraw(self) -> None:
        """The password was never checked: take the reserved failure back."""
        self._limiter._take_back(self.address, self.room, self._marks)
