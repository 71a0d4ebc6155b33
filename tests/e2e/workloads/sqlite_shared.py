"""Threads executing slow queries on one shared sqlite3 connection: SQLite serializes them on the
connection's pthread mutex, so every thread but one waits there, called from query()."""
import json
import sqlite3
import sys
import threading

from _common import options, run_threads

SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
        "SELECT sum(x) FROM c")


def query(conn, sql, n):
    return conn.execute(sql, (n,)).fetchone()[0]  # @execute


def worker(conn, wid, rounds, n, out):
    # One SQL text per thread: the module's statement cache would otherwise hand the same prepared
    # statement to several threads at once, which 3.13's sqlite3 does not survive (wrong results).
    sql = f"{SLOW} /* worker {wid} */"
    for _ in range(rounds):
        out.append(query(conn, sql, n))


def main():
    a = options(threads=3, rounds=10, rows=100_000)
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    out = []
    run_threads([threading.Thread(target=worker, args=(conn, i, a.rounds, a.rows, out), name=f"sql-{i}")
                 for i in range(a.threads)])
    expected = a.rows * (a.rows + 1) // 2
    assert out == [expected] * (a.threads * a.rounds), "wrong query results"
    print(json.dumps({"queries": len(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
