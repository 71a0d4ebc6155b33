#!/usr/bin/env python3
"""A small threaded HTTP/JSON service and its client, the workload of tools/bench-service.

  bench_service.py server LOGFILE PORTFILE
      serves on 127.0.0.1 (an ephemeral port, written to PORTFILE once listening) with
      ThreadingHTTPServer: HTTP/1.1 keep-alive, one thread per connection, JSON bodies, every request
      logged through `logging` to LOGFILE, and a shared cache (a dict behind a threading.Lock) of
      computed items. GET /shutdown stops it; it then prints its own CPU time as JSON on stdout.
  bench_service.py client PORT REQUESTS CONNECTIONS
      sends REQUESTS requests over CONNECTIONS keep-alive connections (one thread each), a fixed
      mix of reads, cache misses and writes, then GET /shutdown; prints requests/s as JSON.
  bench_service.py batches CONNECTIONS
      the same mix in batches, on request (tools/soak-service): reads "PORT REQUESTS" lines on stdin,
      sends each batch over CONNECTIONS fresh connections, prints one JSON line per batch.
"""
import hashlib
import http.client
import json
import logging
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEMS = 512  # distinct keys: most reads hit the cache, a few miss and compute


class Service:
    def __init__(self):
        self.lock = threading.Lock()
        self.cache = {}
        self.hits = self.misses = self.writes = 0

    @staticmethod
    def compute(key):
        """An item as a real service might build it: some hashing and a nested structure."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        return {"key": key, "digest": digest, "parts": [digest[i:i + 8] for i in range(0, 64, 8)],
                "score": sum(ord(c) for c in digest) % 997}

    def get(self, key):
        with self.lock:
            item = self.cache.get(key)
            if item is not None:
                self.hits += 1
                return item
            self.misses += 1
        item = self.compute(key)
        with self.lock:
            self.cache.setdefault(key, item)
        return item

    def put(self, key, value):
        with self.lock:
            item = dict(self.cache.get(key) or self.compute(key))
            item["value"] = value
            self.cache[key] = item
            self.writes += 1
        return item


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # One write per response (handle_one_request flushes), without Nagle: headers and body in separate
    # segments would wait for the client's delayed ACK (40 ms) on every request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    service = None
    log = logging.getLogger("service")

    def log_message(self, fmt, *args):  # the request line, to the log file rather than stderr
        self.log.info("%s %s", self.address_string(), fmt % args)

    def reply(self, status, obj):
        body = json.dumps(obj, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/shutdown":
            self.reply(200, {"ok": True})
            self.wfile.flush()  # before the server goes away
            threading.Thread(target=self.server.shutdown).start()
            return
        if self.path.startswith("/item/"):
            self.reply(200, self.service.get(self.path[6:]))
        elif self.path == "/stats":
            with self.service.lock:
                self.reply(200, {"hits": self.service.hits, "misses": self.service.misses,
                                 "items": len(self.service.cache)})
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        data = json.loads(self.rfile.read(length) or b"{}")
        if self.path.startswith("/item/"):
            self.reply(200, self.service.put(self.path[6:], data.get("value")))
        else:
            self.reply(404, {"error": "no such path"})


def server(logfile, portfile):
    handler = logging.FileHandler(logfile)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(message)s"))
    Handler.log.addHandler(handler)
    Handler.log.setLevel(logging.INFO)
    Handler.service = Service()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(httpd.server_address[1]))
    os.rename(tmp, portfile)  # whole or absent for the client
    cpu0 = time.process_time()
    httpd.serve_forever(poll_interval=0.05)
    httpd.server_close()
    handler.close()
    s = Handler.service
    print(json.dumps({"cpu_s": time.process_time() - cpu0, "hits": s.hits, "misses": s.misses, "writes": s.writes}))


def session(port, index, count, errors):
    """One keep-alive connection sending count requests, the same mix for the same index."""
    rng = random.Random(index)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for i in range(count):
            key = f"k{rng.randrange(ITEMS)}"
            if i % 10 == 9:
                conn.request("POST", f"/item/{key}", body=json.dumps({"value": i}).encode(),
                             headers={"Content-Type": "application/json"})
            else:
                conn.request("GET", f"/item/{key}")
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or json.loads(body)["key"] != key:
                raise RuntimeError(f"bad reply {r.status}: {body[:100]!r}")
    except Exception as e:  # reported by the main thread
        errors.append(repr(e))
    finally:
        conn.close()


def batches(connections):
    """For each line "PORT REQUESTS" on stdin, that many requests over fresh connections to PORT; one
    JSON line per batch on stdout once all its replies are in, so the caller samples between batches."""
    for line in sys.stdin:
        port, requests = map(int, line.split())
        wall, errors = sessions(port, requests, connections)
        if errors:
            print(f"bench_service: batches: {errors[0]}", file=sys.stderr)
            sys.exit(1)
        print(json.dumps({"port": port, "requests": requests, "wall_s": wall}), flush=True)


def sessions(port, requests, connections):
    """`requests` requests spread over `connections` keep-alive sessions at once: (wall seconds, errors)."""
    errors = []
    per = [requests // connections + (1 if i < requests % connections else 0) for i in range(connections)]
    threads = [threading.Thread(target=session, args=(port, i, n, errors)) for i, n in enumerate(per)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors


def client(port, requests, connections):
    wall, errors = sessions(port, requests, connections)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/shutdown")
    conn.getresponse().read()
    conn.close()
    if errors:
        print(f"bench_service: client: {errors[0]}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"requests": requests, "wall_s": wall, "rps": requests / wall}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "server":
        server(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "client":
        client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "batches":
        batches(int(sys.argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
