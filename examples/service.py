"""A small request-handling service whose threads queue up behind one global lock.

Eight worker threads (a ThreadPoolExecutor) serve simulated requests. Each request

  1. parses its query and does some per-request CPU work (runs in parallel: no lock),
  2. looks its page up in a shared ``dict`` cache and counts hits in a shared ``dict``
     (a ``critical_section`` wait whenever two threads use the same dict's per-object
     lock at once),
  3. on a miss renders the page under ``RENDER_LOCK``, a global ``threading.Lock`` that
     was added "to be safe" around the whole template render.

Run it under the profiler::

    ftprof run -- python3.13t examples/service.py

and the report's first entry is that ``lock``: its waiters sit on the ``with RENDER_LOCK:``
line in ``handle_request``, and its holders release it at the end of that block, after
``render_template``. Next come ``critical_section`` waits on a ``dict``, also in
``handle_request``: in CPython 3.13t ``dict.get`` runs under the dict's per-object lock (as
do all writes), so ``CACHE.get`` and the ``HITS`` counter update make eight threads queue
on two dicts, even though reading with ``d[key]`` would not take the lock at all.

The fix (``--fixed``): the only state the lock protected was the template registry,
which never changes after start-up, so rendering runs outside any lock; the cache is
sharded by key into several dicts, read with ``shard[key]`` (no lock) instead of
``.get``, so only the rare writes of new pages take a dict's lock, and they rarely meet
on the same shard; hit counts are kept per thread and summed at the end. Compare the two profiles::

    ftprof run -o before.ftp -- python3.13t examples/service.py
    ftprof run -o after.ftp  -- python3.13t examples/service.py --fixed
"""

import argparse
import concurrent.futures
import threading
import time

TEMPLATES = {
    "home": "<h1>{title}</h1><p>{body}</p>",
    "item": "<h2>{title}</h2><ul>{body}</ul>",
    "search": "<h3>{title}</h3><ol>{body}</ol>",
}

# Guards nothing that changes while requests run: TEMPLATES is filled once at import.
RENDER_LOCK = threading.Lock()
CACHE = {}
HITS = {}

SHARDS = 16
SHARDED_CACHE = [{} for _ in range(SHARDS)]
LOCAL = threading.local()
THREAD_HITS = []
THREAD_HITS_LOCK = threading.Lock()


def parse_query(request_id):
    """Per-request CPU work: runs in parallel on every core, it is not what we are after."""
    parts = [f"k{(request_id * 31 + i) % 97}=v{i}" for i in range(120)]
    query = dict(p.split("=") for p in parts)
    return "item" if request_id % 3 else ("home" if request_id % 2 else "search"), query


def render_template(name, key):
    """The slow part: a few hundred microseconds of pure Python layout work per page."""
    rows = []
    for i in range(150):
        width = 0
        for j in range(40):
            width += (i * j + len(key)) % 17
        rows.append(f"<li class='{'odd' if i % 2 else 'even'}'>{key}-{i}: {width:>4}</li>")
    return TEMPLATES[name].format(title=key.upper(), body="".join(rows))


def handle_request(request_id):
    name, query = parse_query(request_id)
    key = f"{name}:{request_id % 2000}"
    page = CACHE.get(key)
    if page is None:
        with RENDER_LOCK:
            page = render_template(name, key)
        CACHE[key] = page
    HITS[key] = HITS.get(key, 0) + 1
    return len(page) + len(query)


def handle_request_fixed(request_id):
    name, query = parse_query(request_id)
    key = f"{name}:{request_id % 2000}"
    shard = SHARDED_CACHE[hash(key) % SHARDS]
    try:
        page = shard[key]  # d[key] reads without the dict's lock; dict.get takes it (3.13)
    except KeyError:
        page = render_template(name, key)
        shard[key] = page
    hits = getattr(LOCAL, "hits", None)
    if hits is None:
        hits = LOCAL.hits = {}
        with THREAD_HITS_LOCK:  # once per thread, not per request
            THREAD_HITS.append(hits)
    hits[key] = hits.get(key, 0) + 1
    return len(page) + len(query)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="run the version without the global lock")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    handler = handle_request_fixed if args.fixed else handle_request
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="worker") as pool:
        total = sum(pool.map(handler, range(args.requests)))
    elapsed = time.perf_counter() - start
    if args.fixed:
        hits = sum(sum(h.values()) for h in THREAD_HITS)
    else:
        hits = sum(HITS.values())
    print(f"service: {args.requests} requests, {hits} counted, {total} bytes served "
          f"in {elapsed:.2f} s ({'fixed' if args.fixed else 'global render lock'})")


if __name__ == "__main__":
    main()
