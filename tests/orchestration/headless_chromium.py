"""Just enough of the Chrome DevTools protocol to look at a page the way a user does: Debian's
headless Chromium, a cookie (the Airflow UI's login token), the page's visible text and a screenshot."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import websocket


class HeadlessChromium:
    def __init__(self, width: int = 1600, height: int = 1000):
        from tests.services import require

        binary = shutil.which("chromium-browser") or require("chromium", "look at the Airflow UI in a browser")
        self.profile = tempfile.mkdtemp(prefix="shoprank-chromium-")
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("headless chromium did not start")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        page = requests.put(f"http://127.0.0.1:{port}/json/new?about:blank", timeout=10).json()
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.call("Network.enable")
        self.call("Network.setCookie", url=url, name=name, value=value)

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        result = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                           returnByValue=True)
        return result.get("result", {}).get("value", "")

    def wait_for_text(self, *needles: str, timeout_s: float = 90.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text()
            if all(needle in text for needle in needles) or time.monotonic() > deadline:
                return text
            time.sleep(1)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
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
            shutil.rmtree(self.profile, ignore_errors=True)
