"""The command line describes itself: `ftprof --help` lists every command, `ftprof COMMAND --help` every
option the command's parser accepts with a line of explanation, and every option takes its value the
same two ways (`--opt VALUE`, `--opt=VALUE`) and has the same short form in every command.

The options are also read from the C sources (CMD_FLAG / CMD_VALUE in analyzer/cmd/cmd_*.c), so an option
added to a parser without a help line, or to a command the table does not list, fails here.
"""
import re
import subprocess

import pytest

from conftest import ROOT, clean_env

OPTION_LINE = re.compile(r"^  (?:(-\w), )?(--[\w-]+)(?: (\S+))?\s{2,}(\S.*)$")


def _cli(cli, *args):
    return subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=clean_env(), stdin=subprocess.DEVNULL)


def _commands(cli):
    proc = _cli(cli, "--help")
    assert proc.returncode == 0, proc.stderr
    names = re.findall(r"^  ([a-z]+) ", proc.stdout, re.M)
    assert len(names) >= 9, proc.stdout
    return names


def _options(cli, command):
    """{--name: (short or None, ARG or None, help)} from `ftprof COMMAND --help`."""
    proc = _cli(cli, command, "--help")
    assert proc.returncode == 0, f"ftprof {command} --help exited {proc.returncode}: {proc.stderr}"
    assert proc.stdout.startswith(f"usage: ftprof {command} "), proc.stdout
    assert "\nOptions:\n" in proc.stdout, proc.stdout
    out = {}
    for line in proc.stdout.split("\nOptions:\n", 1)[1].splitlines():
        m = OPTION_LINE.match(line)
        if m:
            out[m.group(2)] = (m.group(1), m.group(3), m.group(4))
    assert "--help" in out, proc.stdout
    return out


def test_every_command_has_help_with_every_option_explained(ftprof_cli):
    seen = set()
    for command in _commands(ftprof_cli):
        options = _options(ftprof_cli, command)
        for name, (_, _, text) in options.items():
            assert len(text.split()) >= 3, f"ftprof {command} --help: {name} has no real explanation: {text!r}"
        seen |= set(options)
    in_sources = set()
    for src in sorted((ROOT / "analyzer" / "cmd").glob("*.c")):
        in_sources |= set(re.findall(r'CMD_(?:FLAG|VALUE)\(\s*"(--[\w-]+)"', src.read_text()))
    assert in_sources, "no CMD_FLAG / CMD_VALUE in analyzer/cmd/*.c"
    missing = in_sources - seen
    assert not missing, f"options parsed but in no command's --help: {sorted(missing)}"


def test_short_options_mean_the_same_everywhere(ftprof_cli):
    meaning = {}
    for command in _commands(ftprof_cli):
        for name, (short, _, _) in _options(ftprof_cli, command).items():
            if short:
                assert meaning.setdefault(short, name) == name, \
                    f"{short} is {meaning[short]} in one command and {name} in `ftprof {command}`"


# An operand that makes each command stop early without touching anything: a missing recording, a
# process id that cannot exist, a command that does nothing.
OPERANDS = {"run": ["--", "/bin/true"], "attach": ["2147483647"], "report": ["/nonexistent/a.ftp"],
            "flamegraph": ["/nonexistent/a.ftp"], "export": ["/nonexistent/a.ftp"],
            "diff": ["/nonexistent/a.ftp", "/nonexistent/b.ftp"], "top": ["/nonexistent/a.ftp"],
            "pause": ["/nonexistent/a.ftp"], "resume": ["/nonexistent/a.ftp"], "ready": ["--", "/nonexistent/cmd"]}
VALUES = {"N": "3", "S": "0.5", "FILE": "/nonexistent/out.ftp", "OUT": "/nonexistent/out.html",
          "DIR": "/nonexistent/dir", "PATH": "/nonexistent/python", "PYTHON": "/nonexistent/python"}


@pytest.mark.parametrize("joined", [False, True], ids=["separate", "joined"])
def test_values_are_taken_both_ways(ftprof_cli, joined):
    for command in _commands(ftprof_cli):
        operands = OPERANDS.get(command, ["/nonexistent/a.ftp"])
        for name, (short, arg, _) in _options(ftprof_cli, command).items():
            if name == "--help":
                continue
            if arg is None:
                flag = _cli(ftprof_cli, command, f"{name}=1", *operands)
                usage_error = 125 if command == "run" else 2  # run's own failures keep clear of its command's codes
                assert flag.returncode == usage_error and "takes no value" in flag.stderr, (command, name, flag.stderr)
                continue
            value = VALUES.get(arg, arg.split("|")[0])
            spelled = [f"{name}={value}"] if joined else [name, value]
            proc = _cli(ftprof_cli, command, *spelled, *operands)
            reference = _cli(ftprof_cli, command, *([name, value] if joined else [f"{name}={value}"]), *operands)
            assert "unknown option" not in proc.stderr, (command, spelled, proc.stderr)
            assert (proc.returncode, proc.stderr) == (reference.returncode, reference.stderr), \
                (command, spelled, proc.stderr, reference.stderr)
            if short:
                by_short = _cli(ftprof_cli, command, short, value, *operands)
                assert (by_short.returncode, by_short.stderr) == (proc.returncode, proc.stderr), \
                    (command, short, by_short.stderr, proc.stderr)


def test_version(ftprof_cli):
    proc = _cli(ftprof_cli, "--version")
    version = re.search(r"version\s*:\s*'([^']+)'", (ROOT / "meson.build").read_text()).group(1)
    assert proc.returncode == 0 and proc.stdout.startswith(f"ftprof {version} "), proc.stdout
