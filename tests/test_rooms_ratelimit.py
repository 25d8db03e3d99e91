import pytest

from rooms import AttemptLimiter

KEY = ("10.0.0.1", "consult-1")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock) -> AttemptLimiter:
    return AttemptLimiter(max_failures=5, window_seconds=60, clock=clock)


def _fail(limiter, clock, key, times, step=1.0):
    for _ in range(times):
        limiter.failed(key)
        clock.now += step


def test_allows_until_max_failures(limiter, clock):
    _fail(limiter, clock, KEY, 4)
    assert limiter.check(KEY) == 0
    _fail(limiter, clock, KEY, 1)
    # Five failures at t=1000..1004, now t=1005: wait until the first leaves the window.
    assert limiter.check(KEY) == pytest.approx(55)


def test_lockout_ends_when_window_slides(limiter, clock):
    _fail(limiter, clock, KEY, 5)
    clock.now = 1000 + 60
    assert limiter.check(KEY) == 0
    limiter.failed(KEY)  # one more failure right away locks again until the next one expires
    assert limiter.check(KEY) == pytest.approx(1)


def test_failures_outside_window_do_not_count(limiter, clock):
    _fail(limiter, clock, KEY, 4, step=20)  # t=1000, 1020, 1040, 1060
    _fail(limiter, clock, KEY, 1)  # t=1080: the one at 1000 has already left
    assert limiter.check(KEY) == 0


def test_success_resets(limiter, clock):
    _fail(limiter, clock, KEY, 5)
    assert limiter.check(KEY) > 0
    limiter.succeeded(KEY)
    assert limiter.check(KEY) == 0
    assert len(limiter) == 0
    limiter.succeeded(("never", "seen"))  # harmless


def test_keys_are_independent(limiter, clock):
    _fail(limiter, clock, KEY, 5)
    assert limiter.check(("10.0.0.2", "consult-1")) == 0
    assert limiter.check(("10.0.0.1", "other-room")) == 0


def test_stale_keys_are_pruned(limiter, clock):
    for i in range(50):
        limiter.failed((f"10.0.0.{i}", "r"))
    assert len(limiter) == 50
    clock.now += 61
    limiter.check(KEY)
    assert len(limiter) == 0


def test_key_count_is_capped(clock):
    limiter = AttemptLimiter(max_failures=2, window_seconds=60, clock=clock, max_keys=100)
    _fail(limiter, clock, KEY, 2, step=0.001)
    for i in range(1000):
        limiter.failed((f"attacker-{i}", "r"))
        assert len(limiter) <= 100
    # The least recently failing keys went first.
    assert limiter.check(("attacker-999", "r")) == 0  # one failure, still allowed
    assert len(limiter) == 100
    assert KEY not in limiter._failures


def test_per_key_memory_is_bounded(limiter, clock):
    _fail(limiter, clock, KEY, 10_000, step=0.0)
    assert len(limiter._failures[KEY]) == 5


@pytest.mark.parametrize(
    "kwargs", [{"max_failures": 0}, {"window_seconds": 0}, {"max_keys": 0}]
)
def test_rejects_bad_config(kwargs):
    with pytest.raises(ValueError):
        AttemptLimiter(**kwargs)
