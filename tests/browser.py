"""Headless Chromium driven over the DevTools protocol (CDP), for the web pages' tests.

    with Browser.start(tmp_path) as browser:
        browser.set_cookie("http://127.0.0.1:8080", "_token", token)
        browser.goto("http://127.0.0.1:8080/songmill/editor/demo-single/1")
        browser.wait_for("document.querySelectorAll('#history li').length > 0")
        browser.screenshot(tmp_path / "page.png")

Chromium (Debian `chromium`, installed by `make setup`) listens on a port of its own choosing on
127.0.0.1 and writes it to DevToolsActivePort in its profile folder; one page is driven through
its websocket (websocket-client). The browser is stopped by PID.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import websocket


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process, self.port = process, port
        page = next(t for t in self._targets() if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.console: list[str] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    @staticmethod
    def executable() -> str | None:
        return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

    @classmethod
    def start(cls, folder: Path, *, width: int = 1200, height: int = 900) -> "Browser":
        executable = cls.executable()
        if executable is None:
            raise BrowserError("chromium is not installed; run `make setup` (Debian package chromium)")
        profile = folder / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",  # no traffic beyond the page under test
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "chromium.log").open("wb"),
        )
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise BrowserError(f"chromium did not start: {(folder / 'chromium.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        return cls(process, int(port_file.read_text().split()[0]))

    def _targets(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as response:
            return json.loads(response.read())

    def call(self, method: str, **params) -> dict:
        """Send one CDP command and return its result (events on the way are kept: console lines)."""
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in message["params"]["args"]))
            elif message.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + message["params"]["exceptionDetails"].get("text", ""))
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.call("Network.setCookie", name=name, value=value, url=url, path="/")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str, *, await_promise: bool = False):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description') or result['exceptionDetails']['text']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout_s: float = 30, what: str | None = None):
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
                raise BrowserError(f"waited {timeout_s:.0f} s for {what or expression}; the page says: {text!r}; console: {self.console[-5:]}")
            time.sleep(0.5)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
