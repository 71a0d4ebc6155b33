"""The `ftprof` command of a pip installation (and `python -m ftprof`): replaces this Python process with
the ftprof executable installed next to this file, so its exit status, signals and terminal are the
executable's own. The executable finds the recorder beside itself."""
import os
import sys


def main():
    exe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ftprof")
    try:
        os.execv(exe, ["ftprof", *sys.argv[1:]])
    except OSError as e:
        sys.stderr.write(f"ftprof: {exe}: cannot run the installed executable: {e.strerror}\n")
        sys.exit(7)


if __name__ == "__main__":
    main()
