"""Open a page in headless Chromium and talk to it over the DevTools protocol (a websocket, via
aiohttp, which Ray already depends on): console errors, network requests, JavaScript results and
a screenshot. Test-only; Debian's chromium package provides the browser (scripts/setup.sh)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,900", "--remote-debugging-port=0")


def find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@dataclass
class Page:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


def open_page(url: str, scripts: dict[str, str], timeout: float = 60.0,
              screenshot_at: str | None = None) -> Page:
    """Load url, wait for its load event, evaluate each script (awaiting promises; results by
    name), take a screenshot of the first screen (or of the element with id
    screenshot_at, scrolled to the top). Everything the page logged as an error, every
    uncaught exception and every request it made are collected."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH; run scripts/setup.sh as root")
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = subprocess.Popen([browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _devtools_port(Path(profile), proc, timeout)
        return asyncio.run(asyncio.wait_for(_drive(port, url, scripts, screenshot_at), timeout))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode} at start")
        if active.is_file() and active.read_text().strip():
            return int(active.read_text().split()[0])
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


async def _drive(port: int, url: str, scripts: dict[str, str], screenshot_at: str | None,
                 ) -> Page:
    page = Page()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        target = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _Session(ws, page)
            for domain in ("Runtime", "Log", "Network", "Page"):
                await cdp.call(f"{domain}.enable")
            await cdp.call("Page.navigate", url=url)
            await cdp.wait_event("Page.loadEventFired")
            for name, source in scripts.items():
                reply = await cdp.call("Runtime.evaluate", expression=source, awaitPromise=True,
                                       returnByValue=True)
                if "exceptionDetails" in reply:
                    page.console_errors.append(f"{name}: {reply['exceptionDetails']}")
                page.results[name] = reply.get("result", {}).get("value")
            scroll = (f"document.getElementById({json.dumps(screenshot_at)}).scrollIntoView()"
                      if screenshot_at else "window.scrollTo(0, 0)")
            await cdp.call("Runtime.evaluate", expression=scroll)
            shot = await cdp.call("Page.captureScreenshot", format="png")
            page.screenshot = base64.b64decode(shot["data"])
    return page


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, page: Page) -> None:
        self.ws, self.page, self.next_id, self.events = ws, page, 0, []

    async def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method,
                                           "params": params}))
        while True:
            message = await self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def wait_event(self, method: str) -> dict:
        while True:
            for event in self.events:
                if event["method"] == method:
                    self.events.remove(event)
                    return event
            await self._receive()

    async def _receive(self) -> dict:
        message = json.loads((await self.ws.receive()).data)
        if "method" in message:
            self._record(message)
            self.events.append(message)
        return message

    def _record(self, event: dict) -> None:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.page.console_errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description")) for a in params.get("args", [])]
            self.page.console_errors.append(f"console.{params['type']}: {args}"[:500])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.page.console_errors.append(f"log: {params['entry'].get('text')}"[:500])
        elif method == "Network.requestWillBeSent":
            self.page.requests.append(params["request"]["url"])
