"""Open the report in headless Chromium: every image loads, nothing is fetched, no console errors.

    python bench/check_report_browser.py [report/index.html] [--chromium PATH] [--width 1280]

Starts Debian's ``chromium`` (or --chromium / $CHROMIUM) headless with a fresh profile and
talks to it over the DevTools protocol (needs the ``websocket-client`` package; ``make
report-check`` installs it). Loads the page from its file, then checks that

* every ``<img>`` has loaded (``complete`` and ``naturalWidth > 0``);
* every resource the page loaded is a local file (nothing from the network);
* the console shows no error and the page threw no exception;

and writes a full-page screenshot, ``screenshot.png`` next to the page (or --screenshot).
Prints one line per failed check; exit status 0 when all pass, 1 when one fails, 2 when
Chromium or the page cannot be used.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
INSTALL_HINT = "install Debian's package (sudo apt-get install -y chromium) or pass --chromium PATH"
MAX_SCREENSHOT_HEIGHT = 16000

IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))"""
RESOURCES_JS = "JSON.stringify(performance.getEntriesByType('resource').map(e => e.name))"


class Failure(Exception):
    """Chromium or the page cannot be used (exit status 2)."""


def find_chromium(given: str | None) -> str:
    for name in [given, os.environ.get("CHROMIUM"), *CHROMIUM_NAMES]:
        if name and (shutil.which(name) or Path(name).is_file()):
            return shutil.which(name) or name
    raise Failure(f"no Chromium found: {INSTALL_HINT}")


class DevTools:
    """A minimal DevTools-protocol client: numbered commands, events kept for later."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        try:
            import websocket
        except ImportError:
            raise Failure("the websocket-client package is missing: pip install websocket-client") from None
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == msg_id:
                if "error" in message:
                    raise Failure(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if any(e["method"] == event for e in self.events):
            return
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
                if message["method"] == event:
                    return
        raise Failure(f"the page did not fire {event} within {timeout:.0f}s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise Failure(f"evaluating in the page failed: {result['exceptionDetails'].get('text')}")
        return json.loads(result["result"]["value"])

    def close(self) -> None:
        self.ws.close()


def start_chromium(binary: str, profile: Path, timeout: float) -> tuple[subprocess.Popen, str]:
    """Start Chromium on about:blank; return the process and its page's DevTools websocket URL."""
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"{binary} exited at start (status {proc.returncode})")
        if port_file.is_file() and port_file.read_text().strip():
            port = int(port_file.read_text().split()[0])
            no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with no_proxy.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                pages = [t for t in json.load(response) if t.get("type") == "page"]
            if pages:
                return proc, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    proc.kill()
    raise Failure(f"{binary} did not open its DevTools port within {timeout:.0f}s")


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries (failed loads among them)."""
    errors = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(
                "console.error: "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(
                f"exception: {details.get('exception', {}).get('description') or details.get('text')}"
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source', 'log')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


def check_page(page: Path, screenshot: Path, binary: str, width: int, timeout: float) -> list[str]:
    """Load ``page``, write ``screenshot``; return the failed checks (empty when all pass)."""
    profile = Path(tempfile.mkdtemp(prefix="report-check-"))
    proc = None
    try:
        proc, ws_url = start_chromium(binary, profile, timeout)
        tools = DevTools(ws_url, timeout)
        try:
            for domain in ("Page", "Runtime", "Log"):
                tools.call(f"{domain}.enable")
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            tools.call("Page.navigate", url=page.resolve().as_uri())
            tools.wait_for("Page.loadEventFired", timeout)
            images = tools.evaluate(IMAGES_JS)
            resources = tools.evaluate(RESOURCES_JS)
            metrics = tools.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            height = min(int(size["height"]) + 1, MAX_SCREENSHOT_HEIGHT)
            shot = tools.call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            time.sleep(0.2)  # let late log entries arrive
            tools.call("Runtime.evaluate", expression="0")
            errors = console_errors(tools.events)
        finally:
            tools.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    failures = [
        f"image not loaded: {i['src']} (complete={i['complete']}, naturalWidth={i['width']})"
        for i in images
        if not (i["complete"] and i["width"] > 0)
    ]
    failures += [
        f"fetched from outside the page's files: {url}" for url in resources if not url.startswith("file://")
    ]
    failures += [f"console: {e}" for e in errors]
    print(
        f"{page}: {len(images)} images, {len(resources)} resources loaded, {len(errors)} console errors; "
        f"screenshot {screenshot} ({width}x{height})"
    )
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page", nargs="?", default="report/index.html", help="the page (%(default)s)")
    p.add_argument("--screenshot", help="PNG to write (default: screenshot.png next to the page)")
    p.add_argument(
        "--chromium", help=f"the browser binary (default: $CHROMIUM, then {', '.join(CHROMIUM_NAMES)})"
    )
    p.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (%(default)s)")
    p.add_argument("--timeout", type=float, default=60, help="seconds to wait for Chromium and the page")
    args = p.parse_args(argv)
    page = Path(args.page)
    try:
        if not page.is_file():
            raise Failure(f"page not found: {page} (build it with `make report` or `python -m dlcv.report`)")
        binary = find_chromium(args.chromium)
        screenshot = Path(args.screenshot) if args.screenshot else page.parent / "screenshot.png"
        failures = check_page(page, screenshot, binary, args.width, args.timeout)
    except Failure as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"FAIL {failure}")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
