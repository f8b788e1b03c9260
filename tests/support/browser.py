"""A page rendered in a real headless Chromium (Debian's ``chromium``; ``make browser``
installs it), driven over the DevTools protocol on a loopback websocket (aiohttp): what it
logged, every request it made, what overflows the viewport, and a full-page screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .cli import stop_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WHY_NOT = "chromium is not installed: run `make browser` (as root it installs Debian's package)"
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
# Every element's box against the viewport: the ones reaching past either side.
OVERFLOW_JS = """(() => {
  const width = document.documentElement.clientWidth, wide = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 0.5 || r.left < -0.5))
      wide.push(`${el.tagName} ${el.className.baseVal ?? el.className} ${r.left}-${r.right}`);
  }
  return {width, scrollWidth: document.documentElement.scrollWidth, wide};
})()"""


@dataclass
class Rendered:
    width: int
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    overflow: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # what the page's script (``evaluate``) returned
    screenshot: bytes = b""


class _Session:
    """One DevTools session of a page target (flat protocol: sessionId on each message)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids = ws, itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        message: dict[str, Any] = {"id": n, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        await self.ws.send_str(json.dumps(message))
        while True:
            data = json.loads((await self.ws.receive(timeout=60)).data)
            if data.get("id") == n:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            self.events.append(data)

    async def until(self, event: str) -> None:
        if any(e.get("method") == event for e in self.events):
            return
        while True:
            data = json.loads((await self.ws.receive(timeout=60)).data)
            self.events.append(data)
            if data.get("method") == event:
                return


@contextlib.asynccontextmanager
async def _browser() -> AsyncIterator[str]:
    """A headless Chromium on a free loopback port: its browser websocket URL."""
    assert CHROMIUM, WHY_NOT
    profile = tempfile.mkdtemp(prefix="desk-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        assert proc.stderr is not None
        for line in proc.stderr:
            found = _LISTENING.search(line)
            if found:
                url = found.group(1)
                break
        assert url, "chromium did not start its DevTools endpoint"
        yield url
    finally:
        stop_server(proc)
        shutil.rmtree(profile, ignore_errors=True)


async def _render(page: Path, widths: list[tuple[int, int, bool]], evaluate: str
                  ) -> list[Rendered]:
    out = []
    async with _browser() as url, aiohttp.ClientSession() as http, http.ws_connect(
            url, max_msg_size=0) as ws:
        for width, height, mobile in widths:
            s = _Session(ws)
            target = (await s.call("Target.createTarget", url="about:blank"))["targetId"]
            s.session = (await s.call("Target.attachToTarget", targetId=target,
                                      flatten=True))["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                await s.call(f"{domain}.enable")
            await s.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                         deviceScaleFactor=1, mobile=mobile)
            await s.call("Page.navigate", url=page.resolve().as_uri())
            await s.until("Page.loadEventFired")
            done = Rendered(width)
            done.overflow = (await s.call("Runtime.evaluate", expression=OVERFLOW_JS,
                                          returnByValue=True))["result"]["value"]
            done.result = (await s.call("Runtime.evaluate", expression=evaluate,
                                        returnByValue=True))["result"].get("value")
            size = (await s.call("Page.getLayoutMetrics"))["cssContentSize"]
            shot = await s.call("Page.captureScreenshot", format="png",
                                captureBeyondViewport=True,
                                clip={"x": 0, "y": 0, "width": width,
                                      "height": size["height"], "scale": 1})
            done.screenshot = base64.b64decode(shot["data"])
            for e in s.events:
                method, params = e.get("method"), e.get("params", {})
                if method == "Runtime.consoleAPICalled" and params.get("type") in (
                        "error", "assert", "warning"):
                    done.console_errors.append(json.dumps(params.get("args"))[:300])
                elif method == "Runtime.exceptionThrown":
                    done.console_errors.append(json.dumps(params)[:300])
                elif method == "Log.entryAdded" and params["entry"]["level"] in (
                        "error", "warning"):
                    done.console_errors.append(params["entry"].get("text", "")[:300])
                elif method == "Network.requestWillBeSent":
                    done.requests.append(params["request"]["url"])
            await s.call("Target.closeTarget", targetId=target)
            out.append(done)
    return out


def render(page: Path, widths: list[tuple[int, int, bool]], evaluate: str = "null",
           artefacts: Path | None = None) -> list[Rendered]:
    """``page`` at each (width, height, mobile), with ``evaluate``'s value; screenshots
    written to ``artefacts`` (and to ``$DESK_TEST_ARTEFACTS`` when set)."""
    done = asyncio.run(_render(page, widths, evaluate))
    for folder in (artefacts, os.environ.get("DESK_TEST_ARTEFACTS")):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            for r in done:
                (Path(folder) / f"{page.stem}-{r.width}px.png").write_bytes(r.screenshot)
    return done
