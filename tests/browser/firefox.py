"""Debian's Firefox ESR driven over WebDriver BiDi, for the browser tests.

Playwright drives only its own patched Firefox, and Selenium needs geckodriver; stock
Firefox speaks WebDriver BiDi itself over a WebSocket when started with
`--remote-debugging-port`. This is the small part of that protocol the tests use:
open tabs, navigate, evaluate JavaScript, read the console.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

FIREFOX = os.environ.get("TELEMED_FIREFOX", "/usr/bin/firefox-esr")

# The profile's user.js. The fake camera and microphone without a permission prompt;
# host candidates on loopback as plain addresses (the test server pins its own to
# 127.0.0.1); and nothing that reaches for the internet (the suite runs offline).
PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # Fake devices count as capturing: otherwise Firefox offers only the default
    # route's address as a host candidate, and loopback never.
    "media.navigator.permission.fake": True,
    # Sound starts without a click (Chromium's --autoplay-policy), on a mock audio
    # device (this machine has none; Firefox's audio contexts would never start).
    "media.autoplay.default": 0,
    "media.cubeb.force_mock_context": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.newtabpage.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
}

STARTUP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0


class BidiError(Exception):
    """A WebDriver BiDi command failed, or a script threw."""


class Tab:
    """One browsing context (a tab) and what its pages logged."""

    def __init__(self, firefox: Firefox, context: str, name: str) -> None:
        self.firefox = firefox
        self.context = context
        self.name = name
        self.errors: list[str] = []

    async def goto(self, url: str) -> None:
        await self.firefox.command("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited),
        carried back as JSON."""
        reply = await self.firefox.command("script.evaluate", {
            "expression": f"(async () => JSON.stringify(await ({expression})))()",
            "target": {"context": self.context}, "awaitPromise": True, "resultOwnership": "none"})
        if reply["type"] == "exception":
            raise BidiError(f"{self.name}: {expression}: {reply['exceptionDetails'].get('text')}")
        value = reply["result"]
        return json.loads(value["value"]) if value["type"] == "string" else None

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll `expression` until it is truthy; return its value. It may throw meanwhile
        (the page is still loading, or navigating away)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value, failure = None, None
            try:
                value = await self.evaluate(expression)
            except BidiError as exc:
                failure = exc
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: timed out after {timeout} s waiting for {expression}"
                                     + (f" (last: {failure})" if failure else ""))
            await asyncio.sleep(0.2)


class Firefox:
    """A WebDriver BiDi session with one running Firefox."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.version = ""
        self.tabs: dict[str, Tab] = {}
        self._ids = 0
        self._waiting: dict[int, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "log.entryAdded":
                self._logged(data["params"])
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BidiError("Firefox closed the WebDriver BiDi connection"))

    def _logged(self, entry: dict) -> None:
        tab = self.tabs.get(entry.get("source", {}).get("context"))
        name = tab.name if tab else "firefox"
        # Shown by pytest only when a test fails.
        print(f"[{name}] {entry.get('type')} {entry.get('level')}: {entry.get('text')}")
        # An uncaught exception, or an error Firefox reports against the page (failed ICE, say).
        if tab and entry.get("type") == "javascript":
            tab.errors.append(f"{name}: {entry.get('text')}")

    async def command(self, method: str, params: dict) -> dict:
        self._ids += 1
        command_id = self._ids
        future = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            await self.ws.send_str(json.dumps({"id": command_id, "method": method, "params": params}))
            reply = await asyncio.wait_for(future, COMMAND_TIMEOUT)
        finally:
            self._waiting.pop(command_id, None)
        if reply.get("type") == "error":
            raise BidiError(f"{method}: {reply.get('error')}: {reply.get('message')}")
        return reply["result"]

    async def tab(self, name: str) -> Tab:
        """The first call gets the window Firefox opened with; later ones open new tabs."""
        if self.tabs:
            context = (await self.command("browsingContext.create", {"type": "tab"}))["context"]
        else:
            context = (await self.command("browsingContext.getTree", {}))["contexts"][0]["context"]
        tab = self.tabs[context] = Tab(self, context, name)
        return tab

    @property
    def errors(self) -> list[str]:
        return [e for tab in self.tabs.values() for e in tab.errors]


async def _port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """Firefox writes the port it listens on (we ask for any free one) into the profile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    written = profile / "WebDriverBiDiServer.json"
    while loop.time() < deadline:
        if process.returncode is not None:
            raise BidiError(f"Firefox exited at start-up with status {process.returncode}")
        with suppress(FileNotFoundError, ValueError):
            return int(json.loads(written.read_text())["ws_port"])
        await asyncio.sleep(0.1)
    raise BidiError(f"Firefox did not open its WebDriver BiDi port within {STARTUP_TIMEOUT} s")


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Ends the Firefox we started (its content processes follow their parent)."""
    if process.returncode is None:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await process.wait()


@asynccontextmanager
async def launch(profile: Path) -> AsyncIterator[Firefox]:
    """A headless Firefox on a fresh profile in `profile` (an empty directory), with a
    BiDi session; closed, and the process ended, on the way out."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()))
    with open(profile / "firefox.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            FIREFOX, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port=0",
            "about:blank", stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        port = await _port(profile, process)
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/session",
                                                                     max_msg_size=0) as ws:
            firefox = Firefox(ws)
            session = await firefox.command("session.new", {"capabilities": {}})
            firefox.version = session["capabilities"]["browserVersion"]
            await firefox.command("session.subscribe", {"events": ["log.entryAdded"]})
            try:
                yield firefox
            finally:
                with suppress(BidiError, TimeoutError, aiohttp.ClientError):
                    await firefox.command("browser.close", {})
                firefox._reader.cancel()
    finally:
        await _stop(process)
