"""Headless Chromium driven over its DevTools pipe, for pages behind a login (the plain `--screenshot` flag
cannot send a session cookie). No client library: the protocol is NUL-separated JSON on fds 3 and 4."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path

from tests.servers import end


class Chromium:
    def __init__(self, width: int = 1600, height: int = 1100) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        self._profile = tempfile.TemporaryDirectory()

        def fds() -> None:  # the child reads commands on fd 3 and writes answers on fd 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]  # clear of 3 and 4
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", f"--window-size={width},{height}",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._next, self.timeout_s = b"", 0, 60.0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                if not select.select([self._from_chrome], [], [], self.timeout_s)[0]:
                    raise TimeoutError(f"{method}: chromium did not answer within {self.timeout_s} s")
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def screenshot(self, url: str, png: Path, cookies: list[dict] | None = None, wait_s: float = 10.0) -> Path:
        """Open `url` with `cookies` set, let it render for `wait_s`, save the viewport as a PNG."""
        target = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        if cookies:
            self.send("Storage.setCookies", {"cookies": cookies})
        self.send("Page.enable", session=session)
        navigated = self.send("Page.navigate", {"url": url}, session=session)
        if navigated.get("errorText"):
            raise RuntimeError(f"opening {url} failed: {navigated['errorText']}")
        time.sleep(wait_s)
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session=session)
        png.write_bytes(base64.b64decode(shot["data"]))
        return png

    def close(self) -> None:
        try:
            end(self.process, grace_s=10)
        finally:
            os.close(self._to_chrome)
            os.close(self._from_chrome)
            self._profile.cleanup()
