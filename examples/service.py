"""A small request-handling service whose threads queue up behind one global lock.

Eight worker threads (a ThreadPoolExecutor) serve simulated requests. Each request

  1. parses its query (per-request CPU work that runs in parallel: no lock),
  2. looks its page up in a shared ``dict`` cache with ``CACHE.get``,
  3. on a miss renders the page and stores it in the cache under ``RENDER_LOCK``, a global
     ``threading.Lock`` that was added "to be safe" around the whole thing.

Run it under the profiler::

    ftprof run -- python3.14t examples/service.py

and the report's first entry is that ``lock``: its waiters sit on the ``with RENDER_LOCK:``
line in ``handle_request``, and its holders release it at the end of that block, after
``render_template``. Next comes a ``critical_section`` on a ``dict``, on the ``CACHE.get``
line: in CPython 3.13t ``dict.get`` runs under the dict's per-object lock (as do all writes),
so eight threads reading one cache queue on it, even though reading with ``d[key]`` would
not take that lock at all. (3.14 made ``dict.get`` lock-free: there only the cache writes
take the dict's lock, and the dict hardly shows.)

The fix (``--fixed``): the lock protected nothing that needs it (the templates never change
and the cache is a dict), so rendering runs outside any lock. The cache is sharded by key
into several dicts and read with ``shard[key]`` (no lock) instead of ``.get``, so only the
writes of new pages take a dict's lock, and they rarely meet on the same shard. Compare the
two profiles::

    ftprof run -o before.ftp -- python3.14t examples/service.py
    ftprof run -o after.ftp  -- python3.14t examples/service.py --fixed
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

# Added "to be safe" around rendering and filling the cache. TEMPLATES never changes after
# import, and a dict is safe to update from several threads, so it protects nothing needed.
RENDER_LOCK = threading.Lock()
CACHE = {}

SHARDS = 16
SHARDED_CACHE = [{} for _ in range(SHARDS)]


def parse_query(request_id):
    """Per-request CPU work: runs in parallel on every core, it is not what we are after."""
    parts = [f"k{(request_id * 31 + i) % 97}=v{i}" for i in range(120)]
    query = dict(p.split("=") for p in parts)
    return "item" if request_id % 3 else ("home" if request_id % 2 else "search"), query


def render_template(name, key):
    """The slow part: a millisecond or two of pure Python layout work per page."""
    rows = []
    for i in range(150):
        width = 0
        for j in range(120):
            width += (i * j + len(key)) % 17
        rows.append(f"<li class='{'odd' if i % 2 else 'even'}'>{key}-{i}: {width:>4}</li>")
    return TEMPLATES[name].format(title=key.upper(), body="".join(rows))


def handle_request(request_id):
    name, query = parse_query(request_id)
    key = f"{name}:{request_id % 1500}"
    page = CACHE.get(key)
    if page is None:
        with RENDER_LOCK:
            page = render_template(name, key)
            CACHE[key] = page
    return len(page) + len(query)


def handle_request_fixed(request_id):
    name, query = parse_query(request_id)
    key = f"{name}:{request_id % 1500}"
    shard = SHARDED_CACHE[hash(key) % SHARDS]
    try:
        page = shard[key]  # d[key] reads without the dict's lock; dict.get takes it (3.13)
    except KeyError:
        page = render_template(name, key)
        shard[key] = page
    return len(page) + len(query)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="run the version without the global lock")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    handler = handle_request_fixed if args.fixed else handle_request
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="worker") as pool:
        total = sum(pool.map(handler, range(args.requests)))
    elapsed = time.perf_counter() - start
    pages = sum(len(shard) for shard in SHARDED_CACHE) if args.fixed else len(CACHE)
    print(f"service: {args.requests} requests, {pages} pages cached, {total} bytes served "
          f"in {elapsed:.2f} s ({'fixed' if args.fixed else 'global render lock'})")


if __name__ == "__main__":
    main()
