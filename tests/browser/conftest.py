"""Browser tests: Debian's Chromium driven by Playwright, fake camera/microphone,
against the real server (tests/server.py) on 127.0.0.1. Debian's Firefox ESR joins
some of them, driven over WebDriver BiDi (tests/browser/firefox.py).

One Chromium per test, with a browser context per person (contexts are cheap; this
machine has two cores). Playwright never downloads a browser here: it is always
given /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from . import firefox as firefox_bidi

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("TELEMED_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    # Three fake cameras to switch between. Chromium's second one is a Y16 "depth"
    # camera that WebRTC cannot encode; the third (MJPEG) works like the first.
    "--use-fake-device-for-media-stream=device-count=3",
    "--auto-select-desktop-capture-source=Entire screen",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Hidden or occluded pages would otherwise stop rendering video.
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
]

TABLET_LANDSCAPE = {"width": 1024, "height": 768}
TABLET_PORTRAIT = {"width": 768, "height": 1024}

if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest_asyncio.fixture
async def browser():
    async with playwright_api.async_playwright() as p:
        # Playwright gives a launched browser a fresh, temporary profile directory.
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture
async def firefox(tmp_path):
    """A headless Firefox ESR on a fresh profile; skips the test where it is not installed."""
    if not Path(firefox_bidi.FIREFOX).exists():
        pytest.skip(f"Firefox not found at {firefox_bidi.FIREFOX} (apt-get install firefox-esr)")
    async with firefox_bidi.launch(tmp_path / "firefox-profile") as running:
        print(f"Firefox {running.version}")  # shown when the test fails
        yield running
        errors = running.errors
    assert not errors, f"uncaught errors in Firefox pages: {errors}"


@asynccontextmanager
async def chromium_in(namespace, origin: str, directory: Path) -> AsyncIterator[object]:
    """Chromium inside a client network namespace (`tests.client_namespace`); Playwright
    talks to it over pipes, which `ip netns exec` keeps. Plain http on a LAN address is
    no secure context, and the camera needs one: `origin` is treated as secure."""
    wrapper = directory / f"chromium-in-{namespace.name}"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(namespace.command([CHROMIUM]))} "$@"\n')
    wrapper.chmod(0o755)
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(wrapper), args=[
            *CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def print_interfaces() -> None:
    """The interfaces and addresses of the test's namespace, shown if the test fails:
    Chromium aborts requests when it sees one come or go (ERR_NETWORK_CHANGED), and a
    page that once failed so, with no test making interfaces beside it, left no clue."""
    for what in ("link", "addr"):
        shown = subprocess.run(["ip", "-o", what, "show"], capture_output=True, text=True, timeout=5)
        print(f"ip -o {what}:\n{shown.stdout}{shown.stderr}")


class Person:
    """One browser context (one person, or one seat with several windows)."""

    def __init__(self, context, name: str) -> None:
        self.context = context
        self.name = name
        self.errors: list[str] = []
        self.pages = []

    def _console(self, msg) -> None:
        print(f"[{self.name}] {msg.type}: {msg.text}")
        if "Content Security Policy" in msg.text:  # Chromium reports each violation here
            self.errors.append(f"{self.name}: {msg.text}")
        if "ERR_NETWORK_CHANGED" in msg.text:
            print_interfaces()

    async def page(self, url: str):
        page = await self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{self.name}: {exc}"))
        # Shown by pytest only when a test fails.
        page.on("console", self._console)
        await page.goto(url)
        self.pages.append(page)
        return page


@pytest_asyncio.fixture
async def people(browser):
    made: list[Person] = []

    async def make(name: str, viewport: dict | None = None, init_script: str | None = None,
                   **options: object) -> Person:
        """`options` go to Playwright's new_context, e.g. has_touch=True for a tablet."""
        context = await browser.new_context(viewport=viewport or TABLET_LANDSCAPE, **options)
        if init_script:
            await context.add_init_script(init_script)
        person = Person(context, name)
        made.append(person)
        return person

    yield make
    errors = [e for p in made for e in p.errors]
    for p in made:
        await p.context.close()
    assert not errors, f"uncaught errors in pages: {errors}"


def room_url(server, room: str, token: str, page: str = "room.html", screen: int | None = None) -> str:
    # quality=sd keeps three encoders and decoders per page light on two cores.
    extra = f"&screen={screen}" if screen else ""
    return f"{server.url}/{page}?room={room}&quality=sd{extra}#token={token}"


# The DICOM viewer's preview, once loaded and decoded, if its URL contains `part`.
IMAGE_SHOWN = """(part) => {
  const img = document.querySelector('.dicom-stage img');
  return img && img.complete && img.naturalWidth > 0 && img.src.includes(part) ? img.src : null;
}"""


_FUNCTION = re.compile(r"\s*(async\s+)?(function\b|\([^)]*\)\s*=>|[\w$]+\s*=>)")


def as_function(expression: str) -> str:
    """Playwright polls a bare expression through eval(), which the server's CSP
    (no 'unsafe-eval') refuses; a function is compiled by the debugger protocol instead."""
    return expression if _FUNCTION.match(expression) else f"() => ({expression})"


async def wait_for(page, expression: str, timeout: float = 20.0, arg=None):
    """Poll a JS expression (or function) in the page until it is truthy; return its value."""
    handle = await page.wait_for_function(as_function(expression), arg=arg, timeout=timeout * 1000, polling=200)
    return await handle.json_value()


async def wait_connected(page, timeout: float = 30.0) -> None:
    await wait_for(page, "window.telemed && window.telemed.session.status === 'connected'", timeout)


async def video_stats(page) -> list[dict]:
    return await page.evaluate("window.telemed.videoStats()")


async def remote_videos_playing(page, count: int, timeout: float = 30.0, source: str | None = None) -> list[dict]:
    """Wait until `count` remote video tiles decode frames, then check that the
    decoded frame counts keep rising (the video plays, not a frozen frame)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: list[dict] = []
    while loop.time() < deadline:
        stats = [s for s in await video_stats(page) if not s["self"] and (source is None or s["source"] == source)]
        ready = [s for s in stats if s["videoWidth"] > 0 and s["framesDecoded"] > 0 and s["playing"]]
        last = stats
        if len(ready) >= count:
            await asyncio.sleep(1.5)
            again = {s["trackId"]: s for s in await video_stats(page)}
            rising = [s for s in ready if again.get(s["trackId"], {}).get("framesDecoded", 0) > s["framesDecoded"]]
            if len(rising) >= count:
                return [again[s["trackId"]] for s in rising]
        await asyncio.sleep(0.5)
    raise AssertionError(f"expected {count} remote videos playing; got {last}")
