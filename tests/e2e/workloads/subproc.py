"""Non-Python children (a shell, the C compiler) started from a profiled Python program."""
import subprocess
import sys


def main():
    r = subprocess.run(["sh", "-c", "echo from-sh; echo sh-err >&2; exit 3"], capture_output=True, text=True)
    print("sh:", r.returncode, r.stdout.strip(), r.stderr.strip())
    r = subprocess.run(["gcc", "-x", "c", "-fsyntax-only", "-"], input="int main(void){return 0;}\n",
                       capture_output=True, text=True)
    print("gcc:", r.returncode, repr(r.stdout), repr(r.stderr))
    r = subprocess.run("echo shell-pipeline | tr a-z A-Z", shell=True, capture_output=True, text=True)
    print("pipe:", r.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
