"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

Web UIs such as TensorBoard's render inside shadow DOM, which ``--dump-dom`` does not serialise,
so tests read the page's text by evaluating JavaScript that walks shadow roots. Chromium reads
NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4; no WebSocket client
is needed. Debian's ``chromium`` package; run as root with ``--no-sandbox``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--remote-debugging-pipe")  # fmt: skip

# Every text node outside <style>/<script>, descending into open shadow roots and same-origin
# iframes.
DEEP_TEXT = """(() => {
  const out = [];
  const walk = (node) => {
    if (!node || node.tagName === 'STYLE' || node.tagName === 'SCRIPT') return;
    if (node.nodeType === Node.TEXT_NODE) out.push(node.textContent);
    if (node.shadowRoot) walk(node.shadowRoot);
    if (node.tagName === 'IFRAME') { try { walk(node.contentDocument); } catch (e) {} }
    if (node.tagName === 'INPUT' && node.value) out.push(node.value);
    for (const child of node.childNodes || []) walk(child);
  };
  walk(document);
  return out.join(' ').replace(/\\s+/g, ' ');
})()"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page; ``close()`` ends it."""

    def __init__(self, profile: Path, width: int = 1600, height: int = 1000) -> None:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, fd 4 carries replies
            # Copied above 10 first: a pipe end may itself be fd 3 or 4, and dup2(fd, fd) would
            # keep its close-on-exec flag ("Remote debugging pipe file descriptors are not open").
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
            for target, fd in zip((3, 4), high, strict=True):
                os.dup2(fd, target, inheritable=True)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer, self._next_id, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        """Send one DevTools command (to the page's session once attached); its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def text(self) -> str:
        """The page's visible text, shadow DOM included."""
        result = self.call("Runtime.evaluate", expression=DEEP_TEXT, returnByValue=True)
        return result.get("result", {}).get("value") or ""

    def open_until(self, url: str, wanted: list[str], timeout: float = 180) -> str:
        """Navigate to ``url`` and poll its text until every string of ``wanted`` shows up.

        Returns the last text read (the caller asserts on it, so a miss shows what was there).
        """
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            time.sleep(1.0)
            text = self.text()
            if all(w in text for w in wanted):
                break
        return text

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
