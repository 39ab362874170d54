"""Stage 1, `cdigen scan` and `cdigen topo`: host topology -> CDI spec.

    sysfs.discover (root or example tree -> model.Topology, warnings instead of errors)
      -> affinity (PIX..SYS per GPU-NIC pair, exclusive assignment)
      -> build.build_spec (pure: the spec for a target cdiVersion) -> build.render
    report.topo_report: the matrix as plain data, for `cdigen topo`

This module holds the stage's option values, so that the command line can offer them without
importing the stage.
"""

DEFAULT_VENDOR = "cdigen.io"  # not nvidia.com: our devices carry NICs too, and must not collide with nvidia-ctk's
DEFAULT_CLASS = "gpu"
NAME_STRATEGIES = ("index", "uuid", "pci")
FORMATS = ("yaml", "json")
MODES = ("container", "vm")  # vm: only functions bound to vfio-pci (scan/vfio.py)
# Every released CDI consumer loads 0.5.0 (docs/cdi-conformance.md, "Versions"); netdev settings
# then travel in the hook arguments alone, which configure the container just as well.
DEFAULT_CDI_VERSION = "0.5.0"
