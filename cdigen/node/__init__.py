"""The node agent: the spec kept true, and kubelet's device plugin.

Commands (cli/deviceplugin.py):

    cdigen device-plugin [--config FILE]   the spec kept true, and the device plugin
    cdigen refresh [--config FILE]         one scan; the spec written if it changed (exit 0;
                                           4 without a GPU, the spec then removed)
    cdigen refresh --watch [--config FILE] the spec kept true, no kubelet (systemd:
                                           deploy/systemd/cdigen-refresh.{service,path})

Both long-running forms run until SIGTERM or SIGINT (exit 0), log one line per event on
stderr (`cdigen: ...`), and never exit on trouble that may pass: no kubelet directory, no
kubelet, an unwritable spec directory, a config file that cannot be used (each said once,
then retried or waited on; docs/benchmarks.md has the timings).

Files:
- read: the config file (default /etc/cdigen/node-agent.yaml; absent: the defaults), the
  netdev config it names, ROOT/sys and ROOT/proc (the scan), the driver's files below
  driver_root;
- written: the spec (default /var/run/cdi/cdigen.yaml, mode 0644, atomically, only when its
  bytes change; removed when the host has no GPU; a missing directory is made, 0755);
- the device plugin: serves KUBELET_DIR/<resource with / as ->.sock (cdigen.io-gpu.sock),
  dials KUBELET_DIR/kubelet.sock;
- the kernel's uevents (a NETLINK_KOBJECT_UEVENT socket; see watch.py for what a container
  receives).

The config file: YAML (or JSON), every key optional, unknown keys refused:

    resource: cdigen.io/gpu            # the extended resource kubelet advertises
    spec: /var/run/cdi/cdigen.yaml     # .json: written as JSON
    kubelet_dir: /var/lib/kubelet/device-plugins
    rescan_seconds: 300                # the periodic rescan, besides uevents
    root: /                            # the host's / as the agent sees it (a pod: /host)
    driver_root: null                  # the driver's files; default: root. The spec names
                                       # them by their path below root
    # as `cdigen scan`'s options of the same names:
    hook_path: /opt/cdigen/bin/cdigen  # default: this cdigen
    vendor: cdigen.io
    class: gpu
    device_name_strategy: index        # index, uuid or pci: the spec's names and kubelet's IDs
    nic_affinity: pxb
    split_ports: false
    netdev_config: null                # a --netdev-config file
    netdev_name: null                  # e.g. net{n}
    cdi_version: 0.5.0
    driver_files: true                 # false: --no-driver-files
    nic_only: false

A device kubelet sees is a GPU device of the spec (the GPU with its NICs), with its NUMA node.
`Allocate` answers with the devices' fully qualified CDI names in `cdi_devices`, the same
comma-separated in the annotation `cdi.k8s.io/<resource with / as _>` and in the environment
variable CDIGEN_DEVICES (the runtime shim's).

deviceplugin_pb2.py is generated from deviceplugin.proto and committed: generating at install
would make grpcio-tools (protoc) a build requirement of every install, the hook-only ones and
a frozen binary's included, for one file that changes only with the protocol. It is protobuf
7.35 gencode, hence pyproject's protobuf>=7.35.1,<8 (the runtime refuses gencode newer than
itself or of another major). Regenerate it with grpcio-tools:

    python -m grpc_tools.protoc -I. --python_out=. cdigen/node/deviceplugin.proto
"""
