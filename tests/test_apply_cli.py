"""`cdigen apply`'s hand-parsed command line (cdigen/cli/apply.py) and the hot paths' imports:
apply, the runtime shim, the CNI plugin, `dan` and `hook ldcache` start without typer, rich or
dataclasses (rich only for `apply --dry-run`), and `cdigen --help` still lists them."""

import json

import pytest

from cdigen.cli.apply import parse_args
from cdigen.errors import UsageError
from tests.helpers.imports import SLOW_IMPORTS, imported
from tests.helpers.proc import run_cdigen
from tests.helpers.specs import FPGA_SPEC, base_config, make_bundle, write_spec


def test_options_as_click_parsed_them():
    args = parse_args(
        ["--device=a.com/b=c", "B", "--device", "a.com/b=d", "--netdev", "-x", "--no-hook", "--hook-path", "/h"]
    )
    assert args["bundle"] == "B" and args["device"] == ["a.com/b=c", "a.com/b=d"]
    assert args["netdev"] == ["-x"]  # a value may start with '-'
    assert args["no_hook"] and not args["dry_run"] and args["hook_path"] == "/h"
    assert parse_args(["--", "-B"])["bundle"] == "-B"
    assert parse_args(["B", "--hook-path", "/a", "--hook-path", "/b"])["hook_path"] == "/b"  # the last wins
    assert parse_args(["B", "-h"]) is None and parse_args(["--help"]) is None
    assert parse_args(["B", "--lock-timeout", "2.5"])["lock_timeout"] == 2.5
    defaults = parse_args(["B"])
    assert (defaults["root"], defaults["spec_dir"], defaults["lock_timeout"], defaults["dry_run"]) == (
        "/",
        [],
        None,
        False,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "missing argument BUNDLE"),
        (["B", "--bogus"], "no such option: '--bogus'"),
        (["B", "--device"], "option --device requires an argument (VENDOR/CLASS=NAME)"),
        (["B", "--dry-run=yes"], "option --dry-run does not take a value"),
        (["A", "B"], "unexpected argument 'B'"),
        (["A", "B", "C"], "unexpected argument 'B'"),
        (["B", "--lock-timeout", "nan"], "--lock-timeout 'nan': expected seconds, 0 to 86400"),
    ],
)
def test_usage_errors(argv, message):
    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert str(e.value) == f"apply: {message} (see cdigen apply --help)"


def test_process_help_and_errors():
    proc = run_cdigen("apply", "--help", check=0)
    assert proc.stdout.startswith("usage: cdigen apply [OPTIONS] BUNDLE\n")
    for option in ("--device", "--netdev", "--spec-dir", "--hook-path", "--no-hook", "--print-patch", "--dry-run"):
        assert option in proc.stdout
    proc = run_cdigen("apply", check=2)
    assert proc.stderr == "cdigen: error: apply: missing argument BUNDLE (see cdigen apply --help)\n"
    assert "apply" in run_cdigen("--help", check=0).stdout


def test_hot_paths_import_no_typer_rich_or_dataclasses(tmp_path):
    spec_dir = tmp_path / "cdi"
    write_spec(spec_dir, "example-fpga.json", FPGA_SPEC)
    bundle = make_bundle(tmp_path)
    apply = ["apply", str(bundle), "--spec-dir", str(spec_dir), "--device", "example.com/fpga=f1"]
    assert not SLOW_IMPORTS & imported([*apply, "--hook-path", "/usr/bin/cdigen"])
    assert "rich" in imported([*apply, "--dry-run"])  # the diff
    (tmp_path / "runtime.json").write_text(json.dumps({"spec_dirs": [str(spec_dir)]}))
    env = {
        "PATH": "/usr/bin:/bin",
        "CDIGEN_RUNTIME": "/bin/true",
        "CDIGEN_RUNTIME_CONFIG": str(tmp_path / "runtime.json"),
    }
    assert not SLOW_IMPORTS & imported(["runtime", "state", "x"], env=env)
    assert not SLOW_IMPORTS & imported(["runtime", "create", "--bundle", str(bundle), "x"], env=env)
    requesting = make_bundle(tmp_path, base_config() | {"annotations": {"cdi.k8s.io/x": "example.com/fpga=f1"}}, "req")
    assert not SLOW_IMPORTS & imported(["runtime", "create", "--bundle", str(requesting), "x"], env=env)
    assert "FPGA=f1" in json.loads((requesting / "config.json").read_text())["process"]["env"]  # it did inject
    cni = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"}
    assert not SLOW_IMPORTS & imported(["cni"], stdin=json.dumps({"cniVersion": "1.0.0"}), env=cni)
    # An ADD that looks for the interface in this process's netns (the rtnetlink client) and records it.
    result = {"cniVersion": "1.0.0", "interfaces": [{"name": "cdgnosuch0", "sandbox": "/proc/self/ns/net"}], "ips": []}
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "cdigen", "record_dir": str(tmp_path / "records")}
    cni |= {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "cdgnosuch0", "CNI_NETNS": "/proc/self/ns/net"}
    assert not SLOW_IMPORTS & imported(["cni"], stdin=json.dumps(conf | {"prevResult": result}), env=cni)


def test_dan_and_hook_ldcache_import_no_typer_rich_or_dataclasses(tmp_path):
    from tests.helpers.hostnet import bundle, pci_devinfo, pci_function, status_entry

    vf = "0000:85:02.5"
    pci_function(tmp_path / "root", vf, "vfio-pci")
    status = [status_entry("default/a", "net1", mac="0a:58:0a:38:d9:ab", mtu=9000, devinfo=pci_devinfo(vf))]
    cri = {"io.kubernetes.cri.sandbox-id": "a1b2c3d4", "io.kubernetes.cri.container-type": "sandbox"}
    pod = bundle(tmp_path, cri | {"k8s.v1.cni.cncf.io/network-status": status})
    dan = ["dan", str(pod), "--root", str(tmp_path / "root"), "--dan-dir", str(tmp_path / "dans")]
    assert not SLOW_IMPORTS & imported(dan)
    assert (tmp_path / "dans" / "a1b2c3d4.json").exists()  # it did write the DAN file
    state = json.dumps({"ociVersion": "1.0.2", "id": "c", "status": "creating", "pid": 1, "bundle": str(pod)})
    assert not SLOW_IMPORTS & imported(["hook", "ldcache", "--folder", "/usr/lib"], stdin=state)
