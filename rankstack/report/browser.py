"""Open a report in a real headless Chromium and say what it rendered.

Drives Chromium through the DevTools protocol over ``--remote-debugging-pipe`` (file descriptors
3 and 4, NUL-separated JSON; no websocket client, no extra package): loads the page, collects every
console error, uncaught exception, error-level log entry (failed loads, CSP refusals) and network
request, then measures the rendered page (the summary table's cells, each SVG chart's size and
drawn shapes) and takes a PNG screenshot of the charts. The test suite and the report benchmark
use it to check that a report renders, offline, without an error.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rankstack.errors import RankstackError

log = logging.getLogger(__name__)

#: Flags for a headless, quiet, offline browser (``--no-sandbox``: containers and root).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars")

# Measured in the page after load: what a reader would see.
_PROBE = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY,
                     w: r.width, h: r.height}; };
  const table = document.querySelector('table.summary');
  const cells = t => t ? [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim())) : null;
  const svgs = [...document.querySelectorAll('svg')].map(s => Object.assign(box(s),
      {shapes: s.querySelectorAll('path, rect, use, line, circle').length}));
  const charts = document.querySelector('#charts');
  return JSON.stringify({
    title: document.title,
    summary: cells(table),
    cost: cells(document.querySelector('table.cost')),
    summary_box: table ? box(table) : null,
    svgs: svgs,
    charts_box: charts ? box(charts) : null,
    queries: document.querySelectorAll('details.query').length,
    text: document.body ? document.body.innerText.length : 0,
  });
})()"""


@dataclass
class PageCheck:
    """What the browser saw: errors (empty when clean), requests other than the page itself, the probe's
    measurements (``summary`` and ``cost`` table cells, ``svgs`` boxes and shape counts, ...), a PNG of the charts."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dom: dict = field(default_factory=dict)
    screenshot: bytes = b""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH, or ``$RANKSTACK_CHROMIUM``."""
    if os.environ.get("RANKSTACK_CHROMIUM"):
        return os.environ["RANKSTACK_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _Pipe:
    """The DevTools protocol over a pipe pair: ``call`` sends a command and returns its result;
    events that arrive meanwhile are kept in ``events``."""

    def __init__(self, proc, wfd: int, rfd: int, deadline: float):
        self.proc, self.wfd, self.rfd, self.deadline = proc, wfd, rfd, deadline
        self.buf, self.next_id, self.events = b"", 0, []

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise RankstackError("the browser did not answer in time")
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                raise RankstackError(f"the browser closed the DevTools pipe (exit code {self.proc.poll()})")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RankstackError(f"DevTools {method}: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read())


def _launch(binary: str, profile: str, log_path: str):
    """Start the browser with fds 3 (commands in) and 4 (answers out) wired to two pipes; its own
    messages go to ``log_path``."""
    cmd_r, cmd_w = os.pipe()
    out_r, out_w = os.pipe()

    def wire():  # in the child: copies numbered >= 5 first, so that dup2 onto 3 and 4 always makes a new,
        # inheritable descriptor (dup2 of a descriptor onto itself would keep its close-on-exec flag)
        a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 5), fcntl.fcntl(out_w, fcntl.F_DUPFD, 5)
        os.dup2(a, 3)
        os.dup2(b, 4)

    with open(log_path, "wb") as err:
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                 "about:blank"], stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                close_fds=False, preexec_fn=wire)
    os.close(cmd_r)
    os.close(out_w)
    return proc, cmd_w, out_r


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                             for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            ent = p["entry"]
            out.append(f"{ent.get('source')}: {ent.get('text')} {ent.get('url', '')}".strip())
    return out


def check_page(path, chromium: str | None = None, timeout: float = 60.0, width: int = 1280,
               height: int = 900) -> PageCheck:
    """Load the HTML file at ``path`` in headless Chromium and report what it rendered."""
    binary = chromium or find_chromium()
    if not binary:
        raise RankstackError("no Chromium found (install the 'chromium' package or set RANKSTACK_CHROMIUM)")
    url = Path(path).resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="rankstack-chromium-")
    log_path = profile + ".log"
    proc, wfd, rfd = _launch(binary, profile, log_path)
    try:
        return _load(_Pipe(proc, wfd, rfd, time.monotonic() + timeout), url, width, height)
    except (OSError, RankstackError) as e:
        tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-8:]
        raise RankstackError(f"headless Chromium ({binary}) failed on {url}: {e}; its log ends:\n" + "\n".join(tail)) from e
    finally:
        for fd in (wfd, rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
        Path(log_path).unlink(missing_ok=True)


def _load(cdp: _Pipe, url: str, width: int, height: int) -> PageCheck:
    """Drive one page load through ``cdp``: errors, requests, the probe, a screenshot of the charts."""
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
        cdp.call(f"{domain}.enable", session=s)
    cdp.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                    "mobile": False}, session=s)
    cdp.call("Page.navigate", {"url": url}, session=s)
    cdp.wait_for("Page.loadEventFired")
    dom = json.loads(cdp.call("Runtime.evaluate", {"expression": _PROBE, "returnByValue": True},
                              session=s)["result"]["value"])
    clip = dom.get("charts_box") or {"x": 0, "y": 0, "w": width, "h": height}
    shot = cdp.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": clip["x"], "y": clip["y"], "width": max(1, clip["w"]), "height": max(1, min(clip["h"], 8000)),
                 "scale": 1}}, session=s)
    requests = [e["params"]["request"]["url"] for e in cdp.events
                if e.get("method") == "Network.requestWillBeSent" and e["params"]["request"]["url"] != url]
    check = PageCheck(_errors(cdp.events), requests, dom, base64.b64decode(shot["data"]))
    try:
        cdp.call("Browser.close")
    except (OSError, RankstackError):
        pass  # closing: the pipe may end before the answer
    return check
