"""Uncontended single-threaded pure-Python work (about 1-2 s): the recorder's cost when nothing waits."""
import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def churn(n):
    d = {}
    for i in range(n):
        d[i % 997] = d.get(i % 997, 0) + i
    return sum(d.values())


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(fib(32) + churn(int(8_000_000 * scale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
