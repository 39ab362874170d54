"""deploy/kubernetes/: every manifest against the schemas of Kubernetes releases
(kubernetes-validate, strict: an unknown field fails, offline: the schemas ship in the
package), and the claims docs/kubernetes.md makes about them: the privileges, the paths the
agent and the hooks use, the settings the agent reads, the runtime snippets."""

import tomllib
from pathlib import Path

import pytest
import yaml

from cdigen import __version__

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml")) + sorted((DEPLOY / "examples").glob("*.yaml"))
LATEST = kubernetes_validate.utils.latest_version()
# The oldest releases the manifests are for: recursiveReadOnly is beta (on by default) from
# 1.31, resource.k8s.io/v1 is GA from 1.34.
OLDEST = {"resource.k8s.io/v1": "1.34.0"}
OLDEST_DEFAULT = "1.31.0"
HOOK_PATH = "/opt/cdigen/bin/cdigen"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def by_kind(kind: str) -> dict:
    found = [d for d in documents(DEPLOY / "cdigen.yaml") if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def pod_spec() -> dict:
    return by_kind("DaemonSet")["spec"]["template"]["spec"]


def test_there_are_manifests():
    names = {p.relative_to(DEPLOY).as_posix() for p in MANIFESTS}
    assert {"cdigen.yaml", "examples/pod-gpu-nic.yaml", "examples/kata.yaml", "examples/dra.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_manifest_is_valid(path):
    for doc in documents(path):
        for version in sorted({OLDEST.get(doc["apiVersion"], OLDEST_DEFAULT), LATEST}):
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_refuses_what_the_api_server_would():
    """The check has teeth: an unknown field, a wrong type, a misspelt kind fail."""
    daemonset = by_kind("DaemonSet")
    bad_field = yaml.safe_load(yaml.safe_dump(daemonset))
    bad_field["spec"]["template"]["spec"]["hostNetwrok"] = True
    bad_type = yaml.safe_load(yaml.safe_dump(daemonset))
    bad_type["spec"]["template"]["spec"]["containers"][0]["args"] = "device-plugin"
    for doc in (bad_field, bad_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, LATEST, strict=True)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(dict(daemonset, kind="DeamonSet"), LATEST, strict=True)


def test_least_privilege():
    """What docs/kubernetes.md says the pod has, and nothing more: no privileged container, no
    capability, no escalation, root's uid for root's directories, the host paths listed."""
    spec = pod_spec()
    containers = spec["initContainers"] + spec["containers"]
    for c in containers:
        sc = c["securityContext"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert "privileged" not in sc and sc["runAsUser"] == 0
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["hostNetwork"] is True and "hostPID" not in spec and "hostIPC" not in spec
    assert spec["automountServiceAccountToken"] is False
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {
        "opt-cdigen": "/opt/cdigen",
        "device-plugins": "/var/lib/kubelet/device-plugins",
        "cdi-specs": "/var/run/cdi",
        "host-root": "/",
    }
    mounts = {(c["name"], m["name"]): m for c in containers for m in c["volumeMounts"]}
    assert {k for k in mounts if k[1] in host_paths} == {
        ("install", "opt-cdigen"),
        ("agent", "device-plugins"),
        ("agent", "cdi-specs"),
        ("agent", "host-root"),
    }
    assert mounts["agent", "host-root"]["readOnly"] is True
    assert mounts["agent", "host-root"]["recursiveReadOnly"] == "IfPossible"
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    for path in host_paths.values():
        assert f"`{path}`" in doc, path


def test_the_image_is_this_version():
    spec = pod_spec()
    images = {c["image"] for c in spec["initContainers"] + spec["containers"]}
    assert images == {f"localhost/cdigen:{__version__}"}


def test_the_hooks_point_where_the_init_container_installs():
    spec = pod_spec()
    (install,) = spec["initContainers"]
    source, dest = install["command"][1:]
    assert install["command"][0] == "/usr/local/sbin/cdigen-install-node"
    assert source == "/usr/lib/cdigen"  # packaging/build.py's BUNDLE_IN_IMAGE
    (mount,) = install["volumeMounts"]
    assert dest == mount["mountPath"]
    host_dir = next(v["hostPath"]["path"] for v in spec["volumes"] if v["name"] == mount["name"])
    assert host_dir + "/bin/cdigen" == HOOK_PATH  # install-node.sh's link
    assert yaml.safe_load(by_kind("ConfigMap")["data"]["node-agent.yaml"])["hook_path"] == HOOK_PATH


def test_the_agent_reads_its_settings(tmp_path):
    """The ConfigMap's file is what the agent's own loader accepts, mounted where the
    container's --config names it; the settings the pod relies on are set."""
    from cdigen.node import config

    spec = pod_spec()
    (agent,) = spec["containers"]
    assert agent["args"][0] == "device-plugin"
    path = agent["args"][agent["args"].index("--config") + 1]
    mount = next(m for m in agent["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == by_kind("ConfigMap")["metadata"]["name"]
    text = by_kind("ConfigMap")["data"][path.rsplit("/", 1)[1]]
    (tmp_path / "node-agent.yaml").write_text(text)
    settings = config.load(str(tmp_path / "node-agent.yaml"))
    assert settings.root == "/host" and settings.hook_path == HOOK_PATH
    mounted = {m["mountPath"] for m in agent["volumeMounts"]}
    assert {settings.root, settings.kubelet_dir, str(Path(settings.spec).parent)} <= mounted


def test_containerd_snippets_enable_cdi():
    v2 = tomllib.loads((DEPLOY / "node-config" / "containerd-1.7.toml").read_text())
    assert v2["version"] == 2
    cri = v2["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["enable_cdi"] is True and "/var/run/cdi" in cri["cdi_spec_dirs"]
    v3 = tomllib.loads((DEPLOY / "node-config" / "containerd-2.toml").read_text())
    assert v3["version"] == 3
    runtime = v3["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["enable_cdi"] is True and "/var/run/cdi" in runtime["cdi_spec_dirs"]


def test_crio_snippet_reads_the_spec_directory():
    conf = tomllib.loads((DEPLOY / "node-config" / "crio-cdi.conf").read_text())
    assert "/var/run/cdi" in conf["crio"]["runtime"]["cdi_spec_dirs"]


def test_kubelet_snippet():
    conf = yaml.safe_load((DEPLOY / "node-config" / "kubelet-config.yaml").read_text())
    assert conf["apiVersion"] == "kubelet.config.k8s.io/v1beta1" and conf["kind"] == "KubeletConfiguration"
    assert conf["topologyManagerPolicy"] in ("restricted", "single-numa-node")
    # no feature gate: DevicePluginCDIDevices is GA, and kubelet refuses a gate once removed
    assert "featureGates" not in conf


def test_the_nic_only_settings_load(tmp_path):
    """The settings docs/kubernetes.md gives for living beside NVIDIA's device plugin."""
    from cdigen.node import config

    text = "root: /host\nresource: cdigen.io/nic\nnic_only: true\ndevice_name_strategy: uuid\n"
    (tmp_path / "node-agent.yaml").write_text(text)
    settings = config.load(str(tmp_path / "node-agent.yaml"))
    assert (settings.resource, settings.nic_only, settings.device_name_strategy) == ("cdigen.io/nic", True, "uuid")
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    assert "`resource: cdigen.io/nic`, `nic_only: true`,\n  `device_name_strategy: uuid`" in doc
