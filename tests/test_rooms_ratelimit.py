"""The login limiter: failures counted before the check, in-flight caps, a per-room cap."""

import pytest

from rooms import LoginLimiter, LoginLimits, Throttled
from rooms.ratelimit import SlidingWindow

KEY = ("10.0.0.1", "consult-1")
LIMITS = LoginLimits(per_address_room=5, short_window=60, per_address=20, per_room=20,
                     long_window=600, in_flight_per_address=2, in_flight_per_room=4,
                     remember_success=3600)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def window(clock) -> SlidingWindow:
    return SlidingWindow(5, 60, clock)


@pytest.fixture
def limiter(clock) -> LoginLimiter:
    return LoginLimiter(LIMITS, clock=clock)


# --- the sliding window ---------------------------------------------------------------------


def _add(window, clock, key, times, step=1.0):
    for _ in range(times):
        window.add(key)
        clock.now += step


def test_window_allows_until_limit(window, clock):
    _add(window, clock, KEY, 4)
    assert window.wait(KEY) == 0
    _add(window, clock, KEY, 1)
    # Five events at t=1000..1004, now t=1005: wait until the first leaves the window.
    assert window.wait(KEY) == pytest.approx(55)
    clock.now = 1060
    assert window.wait(KEY) == 0


def test_window_remove_takes_back_one_event(window, clock):
    marks = [window.add(KEY) for _ in range(5)]
    assert window.wait(KEY) > 0
    window.remove(KEY, marks[2])
    assert window.count(KEY) == 4 and window.wait(KEY) == 0
    window.remove(("never", "seen"), 1.0)  # harmless


def test_window_prunes_stale_keys_and_caps_keys_and_events(clock):
    window = SlidingWindow(2, 60, clock, max_keys=100)
    for i in range(1000):
        window.add(f"attacker-{i}")
        assert len(window) <= 100
    _add(window, clock, KEY, 10_000, step=0.0)
    assert window.count(KEY) == 2  # only the newest ``limit`` events are kept
    clock.now += 61
    window.count(KEY)
    assert len(window) == 0


@pytest.mark.parametrize("args", [(0, 60), (5, 0)])
def test_window_rejects_bad_config(clock, args):
    with pytest.raises(ValueError):
        SlidingWindow(*args, clock)


# --- the login limiter ----------------------------------------------------------------------


def fail(limiter, address, room, times=1):
    for _ in range(times):
        with limiter.reserve(address, room):
            pass  # closed without succeeded(): a wrong password


def test_the_failure_is_counted_before_the_check(limiter):
    fail(limiter, "a", "r", 3)
    running = [limiter.reserve("a", "r") for _ in range(2)]  # checks whose result is not in yet
    # They already count: the address is at its limit of five, not just in flight.
    with pytest.raises(Throttled, match="from your address"):
        limiter.reserve("a", "r")
    for attempt in running:
        attempt.succeeded()
        attempt.__exit__(None, None, None)
    limiter.reserve("a", "r").__exit__(None, None, None)


def test_success_takes_its_reservation_back(limiter):
    fail(limiter, "a", "r", 4)
    with limiter.reserve("a", "r") as attempt:
        attempt.succeeded()
    fail(limiter, "a", "r")  # the fifth failure, not the sixth
    with pytest.raises(Throttled) as info:
        limiter.reserve("a", "r")
    assert 1 <= info.value.retry_after <= 61


def test_in_flight_cap_per_address_refuses_at_once_and_counts(limiter):
    held = [limiter.reserve("a", "r") for _ in range(2)]
    with pytest.raises(Throttled, match="still being checked"):
        limiter.reserve("a", "other-room")  # the cap is per address, across rooms
    for attempt in held:
        attempt.__exit__(None, None, None)
    # the refused one counted against the address and room: two held + one refused + two more
    fail(limiter, "a", "other-room", 4)
    with pytest.raises(Throttled, match="from your address"):
        limiter.reserve("a", "other-room")


def test_per_address_cap_across_rooms(limiter):
    for i in range(4):
        fail(limiter, "a", f"room-{i}", 5)
    with pytest.raises(Throttled, match="from your address"):
        limiter.reserve("a", "room-new")
    limiter.reserve("b", "room-new").__exit__(None, None, None)  # other addresses are not locked


def test_in_flight_cap_per_room_across_addresses(limiter):
    held = [limiter.reserve(f"10.0.0.{i}", "r") for i in range(4)]
    with pytest.raises(Throttled, match="at once"):
        limiter.reserve("10.0.0.9", "r")
    limiter.reserve("10.0.0.9", "elsewhere").__exit__(None, None, None)
    for attempt in held:
        attempt.__exit__(None, None, None)


def test_many_addresses_lock_the_room_but_not_known_addresses(limiter, clock):
    with limiter.reserve("doctor", "r") as attempt:
        attempt.succeeded()
    for i in range(20):
        fail(limiter, f"10.0.0.{i}", "r")  # one guess each: no address is near its own limit
    with pytest.raises(Throttled, match="invitation") as info:
        limiter.reserve("newcomer", "r")
    assert info.value.retry_after > 500
    with limiter.reserve("doctor", "r") as attempt:  # was in the room lately: may log in again
        assert attempt.priority == 0
        attempt.succeeded()
    limiter.reserve("newcomer", "other-room").__exit__(None, None, None)
    clock.now += 601
    limiter.reserve("newcomer", "r").__exit__(None, None, None)


def test_known_addresses_expire(limiter, clock):
    with limiter.reserve("doctor", "r") as attempt:
        attempt.succeeded()
    assert limiter.known("doctor", "r") and not limiter.known("doctor", "other")
    clock.now += 3601
    assert not limiter.known("doctor", "r")


def test_priority_known_then_fresh_then_failed_lately(limiter):
    with limiter.reserve("a", "r") as attempt:
        assert attempt.priority == 1  # a fresh address
    with limiter.reserve("a", "r") as attempt:
        assert attempt.priority == 2  # it failed a moment ago
        with limiter.reserve("a", "other") as second:
            assert second.priority == 2  # per address, across rooms
    with limiter.reserve("b", "r") as attempt:
        assert attempt.priority == 1
        attempt.succeeded()
    with limiter.reserve("b", "r") as attempt:
        assert attempt.priority == 0  # logged into this room lately


def test_withdraw_counts_nothing(limiter):
    for _ in range(10):
        with limiter.reserve("a", "r") as attempt:
            attempt.withdraw()
    assert not limiter.known("a", "r")
    with limiter.reserve("a", "r") as attempt:
        assert attempt.priority == 1  # still a fresh address


def test_refusals_for_checks_at_once_are_taken_back_by_a_success(limiter):
    # Colleagues behind one NAT all log in at the same moment: two are checked, the rest are
    # told to retry; that counts against the address only until one of them gets in.
    held = [limiter.reserve("nat", "r") for _ in range(2)]
    for _ in range(10):
        with pytest.raises(Throttled):  # "still being checked", then "too many failed attempts"
            limiter.reserve("nat", "r")
    for attempt in held:
        attempt.succeeded()
        attempt.__exit__(None, None, None)
    for _ in range(4):  # their retries, each one a fresh check
        with limiter.reserve("nat", "r") as attempt:
            attempt.succeeded()
    fail(limiter, "nat", "r", 4)
    limiter.reserve("nat", "r").__exit__(None, None, None)  # four failures: not yet locked


def test_a_burst_of_guesses_locks_its_sender_out(limiter):
    held = [limiter.reserve("a", "r") for _ in range(2)]
    for _ in range(298):
        with pytest.raises(Throttled):
            limiter.reserve("a", "r")
    for attempt in held:
        attempt.__exit__(None, None, None)  # both wrong
    with pytest.raises(Throttled, match="from your address"):
        limiter.reserve("a", "r")
