"""One way to talk: `--version`, one usage-error line for every command, one help form at 80
columns, the runtime shim's own help, the --for targets from one table, shell completion, and
`scan -o` into a directory that does not exist yet."""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

import cdigen
from cdigen.cdi.consumers import targets, targets_help
from cdigen.cli.argv import WIDTH
from tests.helpers.imports import SLOW_IMPORTS, imported
from tests.helpers.proc import SHIM, run_cdigen, run_in_process

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_one_line_from_the_package_and_skips_typer(flag):
    proc = run_cdigen(flag, check=0)
    assert proc.stdout == f"cdigen {cdigen.__version__}\n" and proc.stderr == ""
    assert not SLOW_IMPORTS & imported([flag])


USAGE_MISTAKES = [  # argv, the command's words, the message
    (["scan", "--vendr", "x"], "scan", "no such option: '--vendr'; did you mean --vendor?"),
    (["scan", "--format", "xml"], "scan", "invalid value for '--format': 'xml' is not one of 'yaml', 'json'"),
    (["scan", "--nic-affinity"], "scan", "option '--nic-affinity' requires an argument"),
    (["topo", "--nic-affinity", "far"], "topo", "invalid value for '--nic-affinity': 'far' is not one of"),
    (["validate", "--for"], "validate", "option '--for' requires an argument"),
    (["list", "extra"], "list", "got unexpected extra argument"),
    (["netdev", "udev-rule", "--bogus"], "netdev udev-rule", "no such option: '--bogus'"),
    (["netdev", "bogus"], "netdev", "no such command 'bogus'"),
    (["bogus"], "", "no such command 'bogus'"),
    (["--bogus"], "", "no such option: '--bogus'"),
    (["apply", "--devise", "x", "b"], "apply", "no such option: '--devise'; did you mean --device?"),
    (["hook", "--bogus"], "hook", "no such option: '--bogus'"),
    (["hook", "--frobnicate"], "hook", "no such option: '--frobnicate' (see"),  # not "near" --roce by its dashes
    (["hook", "ldcache", "--foldr", "x"], "hook ldcache", "no such option: '--foldr'; did you mean --folder?"),
    (["dan", "--bogus"], "dan", "no such option: '--bogus'"),
    (["netdev", "restore", "--bogus"], "netdev restore", "no such option: '--bogus'"),
]


@pytest.mark.parametrize("argv, words, message", USAGE_MISTAKES, ids=[" ".join(m[0]) for m in USAGE_MISTAKES])
def test_every_usage_mistake_is_one_line_exit_2(argv, words, message):
    """typer's commands as the hand-parsed ones: `cdigen: error: WORDS: MESSAGE (see cdigen WORDS --help)`."""
    proc = run_in_process(*argv, check=2)
    where = f"{words}: " if words else ""
    assert proc.stderr.startswith(f"cdigen: error: {where}{message}"), proc.stderr
    assert proc.stderr.endswith(f" (see {' '.join(['cdigen', *words.split()])} --help)\n"), proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_a_usage_mistake_in_a_whole_process_is_the_same_line():
    proc = run_cdigen("scan", "--vendr", "x", "--format", "x" * 5000, check=2)
    assert proc.stderr == (
        "cdigen: error: scan: no such option: '--vendr'; did you mean --vendor? (see cdigen scan --help)\n"
    )
    proc = run_cdigen("scan", "--format", "x" * 5000, check=2)
    assert proc.stderr.count("\n") == 1 and len(proc.stderr) < 300  # the input is cut short


def _typer_commands() -> list[list[str]]:
    """Every command and group of the typer app, by its words."""
    import typer

    from cdigen.cli.app import app

    out = []

    def walk(command, words):
        out.append(words)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])

    walk(typer.main.get_command(app), [])
    return out


HAND_PARSED = [["apply"], ["hook"], ["hook", "ldcache"], ["dan"], ["netdev", "restore"], ["runtime"]]


@pytest.mark.parametrize("words", _typer_commands() + HAND_PARSED, ids=" ".join)
def test_every_help_has_one_form_within_80_columns(words):
    text = run_in_process(*words, "--help", check=0).stdout
    if words == ["cni"]:
        return  # cli/cni.py's own USAGE text: the plugin's environment and stdin
    usage = "usage: cdigen-runtime" if words == ["runtime"] else f"usage: {' '.join(['cdigen', *words])}"
    assert text.startswith(usage), text
    assert "\noptions:\n" in text and "-h, --help" in text
    assert not set("╭╰│─") & set(text)  # no boxes
    assert max(map(len, text.splitlines())) <= WIDTH, text


def test_scan_help_reads_at_80_columns_as_in_a_pipe():
    narrow = run_cdigen("scan", "--help", env={"COLUMNS": "80"}, check=0).stdout
    assert narrow == run_cdigen("scan", "--help", env={"COLUMNS": "200"}, check=0).stdout
    assert all(len(line) <= 80 for line in narrow.splitlines())
    # The options and their help side by side: each option on a line of its own, starting the row.
    for option in ("--root DIR", "-o, --output FILE", "--netdev-config FILE", "--for ENGINE-VERSION", "--nic-only"):
        assert f"\n  {option} " in narrow or f"\n  {option}\n" in narrow, option


def test_runtime_help_is_the_shims_own(tmp_path):
    """`--help` alone is the shim's (no engine asks a runtime for its help); anything else, even
    `create --help`, still goes to the real runtime."""
    runtime = tmp_path / "runc"
    runtime.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/called\n')
    runtime.chmod(0o755)
    env = {"CDIGEN_RUNTIME": str(runtime), "CDIGEN_RUNTIME_CONFIG": ""}
    for command in ([SHIM, "--help"], [SHIM, "-h"]):
        proc = subprocess.run(command, capture_output=True, text=True, env=os.environ | env, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: cdigen-runtime "), proc.stderr
        for setting in ("CDIGEN_RUNTIME ", "CDIGEN_RUNTIME_CONFIG", "CDIGEN_RUNTIME_LOG", "/etc/cdigen/runtime.json"):
            assert setting in proc.stdout
    assert run_cdigen("runtime", "--help", env=env, check=0).stdout == proc.stdout
    assert not (tmp_path / "called").exists()
    subprocess.run([SHIM, "create", "--help"], env=os.environ | env, timeout=60, check=True)
    assert (tmp_path / "called").read_text() == "create --help\n"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_for_targets_come_from_the_consumers_table():
    assert targets()[-1] == "any" and "podman-4.3" in targets()
    for command in ("scan", "validate"):
        assert targets_help() in _words(run_in_process(command, "--help", check=0).stdout), command
    line = next(line for line in README.read_text().splitlines() if line.startswith("| `--for ENGINE-VERSION` |"))
    assert re.findall(r"`([a-z]+-[0-9.]+|any)`", line) == targets()


def test_shell_completion_is_offered():
    assert "--install-completion" in run_in_process("--help", check=0).stdout
    script = run_cdigen("--show-completion", "bash", check=0).stdout
    assert "_CDIGEN_COMPLETE=complete_bash" in script
    env = {"_CDIGEN_COMPLETE": "complete_bash", "COMP_WORDS": "cdigen sc", "COMP_CWORD": "1"}
    assert run_cdigen(env=env, check=0).stdout.split() == ["scan"]
    env |= {"COMP_WORDS": "cdigen scan --nic-a", "COMP_CWORD": "2"}
    assert run_cdigen(env=env, check=0).stdout.split() == ["--nic-affinity"]


def test_scan_output_makes_the_missing_spec_directory(tmp_path):
    """`scan -o /etc/cdi/cdigen.yaml` on a host without /etc/cdi: the directory is made, 0755 even
    under a strict umask, and the spec written; a file in the way is one line, exit 1."""
    out = tmp_path / "etc" / "cdi" / "cdigen.yaml"
    umask = os.umask(0o077)
    try:
        run_cdigen("scan", "--example", "hgx-h100", "-o", out, check=0)
    finally:
        os.umask(umask)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (out.parent.parent, out.parent, out)] == [0o755, 0o755, 0o644]
    assert out.read_text() == run_cdigen("scan", "--example", "hgx-h100", check=0).stdout
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file" / "x.yaml", tmp_path / "file" / "sub" / "x.yaml"):
        proc = run_cdigen("scan", "--example", "hgx-h100", "-o", path, check=1)
        assert proc.stderr == f"cdigen: error: cannot write {path}: {path.parent}: Not a directory\n"
