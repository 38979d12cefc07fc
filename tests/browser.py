"""Headless Chromium driven through the DevTools protocol (a websocket, via aiohttp), for the web
view's browser test: start it, open a page, evaluate JavaScript, click, take screenshots."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import aiohttp

from client.devserver import free_port

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1200, 660)


def find_chromium() -> Optional[str]:
    """The Chromium (or Chrome) executable on PATH; `make test` installs Debian's `chromium`."""
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One browser tab's DevTools session: commands by id, events ignored."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        await self._socket.send_json({"id": command_id, "method": method, "params": params})
        async for message in self._socket:
            data = json.loads(message.data)
            if data.get("id") == command_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
        raise RuntimeError("the browser closed the DevTools connection")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, interval: float = 0.05) -> None:
        """Poll a JavaScript expression until it is truthy, else TimeoutError (with what the page
        shows as problems)."""
        deadline = time.monotonic() + timeout
        while True:
            if await self.evaluate(f"Boolean({expression})"):
                return
            if time.monotonic() > deadline:
                shown = await self.evaluate("document.getElementById('problems')?.textContent || ''")
                raise TimeoutError(f"not true after {timeout} s: {expression}" + (f" (page problems: {shown})" if shown else ""))
            await asyncio.sleep(interval)

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the element."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


class Chromium:
    """A headless Chromium process with its DevTools endpoint on a free local port; `extra_args`
    e.g. `--host-resolver-rules=MAP name 127.0.0.1` to play a DNS name rebound to this machine."""

    def __init__(self, executable: str, profile_dir: Path, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self._process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             f"--remote-debugging-port={self.port}", f"--user-data-dir={profile_dir}", *extra_args, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._session: Optional[aiohttp.ClientSession] = None

    async def open_page(self, timeout: float = 30.0) -> Page:
        """The first tab, once the DevTools endpoint answers."""
        self._session = aiohttp.ClientSession()
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with self._session.get(f"http://127.0.0.1:{self.port}/json/list") as response:
                    targets = [target for target in await response.json() if target.get("type") == "page"]
                if targets:
                    break
            except aiohttp.ClientError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium's DevTools did not answer on port {self.port}")
            await asyncio.sleep(0.1)
        socket = await self._session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(socket)
        await page.send("Page.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                        deviceScaleFactor=1, mobile=False)
        return page

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
