"""The timeline opens in speedscope (issue 10): `ftprof export --format trace` of four worker threads
queueing for one lock, loaded by speedscope's own page in headless Chromium, shows one profile per
recorded thread, named as the threads named themselves, each weighing the time its lock waits took,
and each drawn.

speedscope is the npm package pinned in tools/speedscope-sha512.txt (tools/speedscope fetches and
verifies it; `make deps` runs it), served with the trace from the test's own directory by a local
HTTP server on 127.0.0.1 and opened as index.html#profileURL=trace.json (its README: "Importing via
URL"). Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe), with the
standard library only: the page is polled until speedscope has loaded the trace, then every profile
is selected in turn (speedscope's `n` key) and screenshot.

Without chromium or speedscope the test is skipped (under CI=true, a failure: tests/expected-skips.txt).
"""
import base64
import functools
import http.server
import json
import os
import queue
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import zlib

import pytest

from conftest import ROOT, WORKLOADS

WL = WORKLOADS / "time_split.py"
VIEW_W, VIEW_H = 1000, 600
# speedscope's toolbar is the top 20-odd CSS pixels; under it the minimap and the flame chart (canvas).
CANVAS_TOP = 30


@pytest.fixture(scope="session")
def speedscope_dir():
    proc = subprocess.run([str(ROOT / "tools" / "speedscope")], capture_output=True, text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.skip(f"speedscope could not be had (tools/speedscope exited {proc.returncode}):\n{proc.stderr}")
    return lines[-1]


@pytest.fixture(scope="session")
def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (make deps installs it)")


# --------------------------------------------------------------------------------------------------
# A static server for the test's directory, remembering what it served.

class _Handler(http.server.SimpleHTTPRequestHandler):
    served = None

    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        self.served.append((self.path.split("?")[0], int(code) if str(code).isdigit() else code))


def serve(directory):
    served = []
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, served


# --------------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol: JSON messages ended by NUL, commands on the browser's fd 3,
# answers and events on its fd 4.

class Browser:
    def __init__(self, chromium, profile_dir):
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-extensions", "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
                 "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", f"--window-size={VIEW_W},{VIEW_H}",
                 "about:blank"]
        self.log = profile_dir.parent / "chromium.log"
        script = f'exec 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-; exec "$@"'
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(["bash", "-c", script, "chromium", chromium, *flags],
                                         pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        os.close(cmd_r)
        os.close(res_w)
        self._next = 0
        self._answers = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()
        self.session = None

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._res_r, 1 << 16)
            if not chunk:  # chromium exited
                os.close(self._res_r)
                self._answers.put(None)
                return
            buf += chunk
            *msgs, buf = buf.split(b"\0")
            for raw in msgs:
                msg = json.loads(raw)
                if "id" in msg:
                    self._answers.put(msg)
                else:
                    self.events.append(msg)
                    if msg.get("method") == "Page.javascriptDialogOpening":
                        self._answers.put(msg)  # a dialog stops the page's scripts: wake the waiter

    def send(self, method, timeout=60, session=True, **params):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            try:
                ans = self._answers.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"chromium did not answer {method} in {timeout} s")
            if ans is None:
                self._answers.put(None)  # for the next command too
                raise AssertionError(f"chromium exited during {method}: {self.stderr_tail()}")
            if ans.get("method") == "Page.javascriptDialogOpening":
                raise AssertionError(f"the page opened a dialog during {method}: "
                                     f"{ans['params'].get('message')!r}\n{self.errors()}")
            if ans["id"] == self._next:
                assert "error" not in ans, (method, ans["error"])
                return ans["result"]

    def attach_to_page(self):
        deadline = time.monotonic() + 60
        while True:
            pages = [t for t in self.send("Target.getTargets", session=False)["targetInfos"] if t["type"] == "page"]
            if pages:
                break
            assert time.monotonic() < deadline, "chromium opened no page"
            time.sleep(0.2)
        self.session = self.send("Target.attachToTarget", session=False, targetId=pages[0]["targetId"],
                                 flatten=True)["sessionId"]
        self.send("Runtime.enable")
        self.send("Page.enable")

    def evaluate(self, expression):
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in res, res["exceptionDetails"]
        return res["result"].get("value")

    def key(self, char):
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=char, code=f"Key{char.upper()}", text=char,
                      windowsVirtualKeyCode=ord(char.upper()))

    def screenshot(self, x, y, w, h):
        data = self.send("Page.captureScreenshot", format="png",
                         clip={"x": x, "y": y, "width": w, "height": h, "scale": 1})["data"]
        return base64.b64decode(data)

    def errors(self):
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(e["params"]["exceptionDetails"].get("exception", {}).get("description")
                           or e["params"]["exceptionDetails"].get("text"))
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in e["params"]["args"]))
        return out

    def stderr_tail(self):
        return self.log.read_text(errors="replace")[-2000:]

    def close(self):
        try:
            self.send("Browser.close", timeout=10, session=False)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the browser and its helpers
            self.proc.wait()
        os.close(self._cmd_w)


# --------------------------------------------------------------------------------------------------
# A PNG screenshot's pixels (8-bit RGB or RGBA, not interlaced: what Chromium writes).

def png_pixels(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6) and not interlace, (depth, ctype, interlace)
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for r in range(h):
        f, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
            elif f == 4:
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def coloured_share(png):
    """Share of the pixels that are coloured (a flame chart's pastel slices), not white, grey or black
    (the background, the grid and the labels)."""
    w, h, bpp, rows = png_pixels(png)
    n = 0
    for row in rows:
        for i in range(0, w * bpp, bpp):
            r, g, b = row[i], row[i + 1], row[i + 2]
            n += max(r, g, b) - min(r, g, b) >= 24
    return n / (w * h)


# --------------------------------------------------------------------------------------------------

def busy_us(spans):
    """Length of the union of [start, end) spans: the time a thread's track has a slice open, which is
    what speedscope weighs a profile of an event trace by."""
    total, end = 0.0, None
    for s, e in sorted(spans):
        if end is None or s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


_UNITS_US = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6, "min": 60e6}


def parse_weight_us(text):
    m = re.fullmatch(r"\s*([\d.]+)\s*(ns|µs|us|ms|s|min)\s*", text)
    assert m, f"speedscope's weight {text!r} is not a time"
    return float(m.group(1)) * _UNITS_US[m.group(2)]


# What the page shows: the title, the profile in view ("… (i/N)" in the toolbar), every profile of the
# selector (its title and total weight), and any error text.
_STATE_JS = r"""(() => {
  let current = null;
  for (const s of document.querySelectorAll('span')) {
    const last = s.lastElementChild;
    if (last && /^\(\d+\/\d+\)$/.test(last.textContent.trim())) { current = s.textContent.trim(); break; }
  }
  const rows = [...document.querySelectorAll('tr[title]')].map(r => [r.title, r.lastElementChild.textContent]);
  return {title: document.title, current, rows, text: document.body ? document.body.innerText.slice(0, 2000) : ''};
})()"""
_ERRORS = ("Something went wrong", "Unrecognized format", "Failed to load")


def wait_state(browser, ready, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        state = browser.evaluate(_STATE_JS)
        bad = [e for e in _ERRORS if e in state["text"]]
        assert not bad, f"speedscope could not load the trace: {state['text'][:600]}\n{browser.errors()}"
        if ready(state):
            return state
        assert time.monotonic() < deadline, (f"speedscope did not show {what} in {timeout} s: {state}\n"
                                             f"{browser.errors()}")
        time.sleep(0.2)


@pytest.mark.support_row("hold times, timeline")
def test_timeline_opens_in_speedscope(runner, chromium, speedscope_dir, tmp_path, results):
    run = runner.run([WL, "--threads", 4, "--rounds", 4, "--cpu-ms", 5, "--hold-ms", 30])
    truth = run.truth()
    site = tmp_path / "site"
    shutil.copytree(speedscope_dir, site)
    trace = site / "trace.json"
    proc = runner.cli_run("export", *run.files, "--format", "trace", "-o", trace)
    assert proc.returncode == 0, proc.stderr

    # What speedscope should show, from the trace itself: a profile for every thread with slices,
    # named by its thread_name, weighing the time its track has a slice open.
    ev = json.loads(trace.read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    spans = {}
    for e in ev:
        if e["ph"] == "X":
            spans.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    expected = {(names.get(tid), tid): busy_us(s) for tid, s in spans.items()}
    workers = sorted(t["name"] for t in truth["threads"])
    assert set(workers) <= {n for n, _ in expected}, (workers, expected)
    n = len(expected)

    httpd, served = serve(site)
    browser = Browser(chromium, tmp_path / "chromium-profile")
    try:
        browser.attach_to_page()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/index.html#profileURL=trace.json"
        browser.send("Page.navigate", url=url)
        state = wait_state(browser, lambda s: s["current"], "a profile of the trace")
        assert len(state["rows"]) == n, (f"speedscope shows {len(state['rows'])} profiles, the trace has {n} "
                                         f"threads: {state['rows']}")
        assert ("/trace.json", 200) in served, served
        assert "trace.json" in state["title"], state["title"]

        # The thread selector: one profile per thread, "<process> (pid P), <thread> (tid T)", weighing
        # what that thread's track holds.
        shown = {}
        for title, weight in state["rows"]:
            m = re.search(r", (.*) \(tid (\d+)\)$", title)
            assert m, f"speedscope's profile {title!r} is not named by its thread"
            shown[(m.group(1), int(m.group(2)))] = parse_weight_us(weight)
        assert set(shown) == set(expected), (sorted(shown), sorted(expected))
        for key, us in expected.items():
            got = shown[key]
            results.add(f"speedscope {runner.python.label} {key[0]}", weight_ratio=got / us)
            assert abs(got - us) <= 0.02 * us + 20, (key, got, us)
        worker_wait = {t["name"]: t["wait_ns"] / 1e3 for t in truth["threads"]}
        for (name, _), us in shown.items():
            if name in worker_wait:  # a worker's profile is its lock waits, as it measured them
                assert abs(us / worker_wait[name] - 1) <= 0.15, (name, us, worker_wait[name])

        # Every profile in turn: the toolbar names it, and the flame chart under it is drawn.
        seen = []
        for i in range(1, n + 1):
            if i > 1:
                browser.key("n")
            state = wait_state(browser, lambda s: s["current"] and s["current"].endswith(f"({i}/{n})"),
                               f"profile {i}/{n}")
            m = re.search(r", (.*) \(tid (\d+)\)\s*\(\d+/\d+\)$", state["current"])
            assert m, state["current"]
            seen.append((m.group(1), int(m.group(2))))
            deadline = time.monotonic() + 30
            while True:
                png = browser.screenshot(0, CANVAS_TOP, VIEW_W, 160)
                (tmp_path / f"profile-{i}.png").write_bytes(png)  # the picture, to look at after a failure
                share = coloured_share(png)
                if share >= 0.05:
                    results.add(f"speedscope {runner.python.label} drawn {seen[-1][0]}", coloured_share=share)
                    break
                assert time.monotonic() < deadline, f"{seen[-1]}: the flame chart stays blank ({share:.1%} coloured)"
                time.sleep(0.3)
        assert sorted(seen) == sorted(expected), seen
        errors = browser.errors()
        assert not errors, errors
    finally:
        browser.close()
        httpd.shutdown()
        httpd.server_close()
