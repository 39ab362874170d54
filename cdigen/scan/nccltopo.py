"""The NCCL topology file (NCCL_TOPO_FILE): where a flat cloud VM's GPUs and NICs really sit.

On VMs such as Azure's ND A100 v4 and ND H100 v5 every GPU and NIC is on a PCI host bridge of
its own, so sysfs says NODE or SYS for every pair. The cloud ships the physical wiring as
the XML file NCCL reads instead of sysfs, named in /etc/nccl.conf: `<system>`, a `<cpu>` per
NUMA node, and in it nested `<pci busid="DDDD:BB:DD.F" class="0x......">` elements, where an
element of any class other than GPU and NIC groups what it holds as a PCIe switch does.
`read_topology` puts where the file places each GPU and NIC into `Topology.nccl_places`
(docs/topology.md, "NCCL topology files"); `affinity.file_class` makes classes of them.
"""

import os

from cdigen.errors import BadArgument
from cdigen.files import UnreadableFile, read_regular
from cdigen.scan.model import ScanWarning, Topology
from cdigen.values import is_pci_address, one_line, quoted

CONF = "etc/nccl.conf"
MAX_CONF_BYTES = 65536
MAX_FILE_BYTES = 1 << 20  # NCCL's dumps of the largest systems are tens of KB
MAX_DEPTH = 64  # elements open at once: NCCL's files nest a handful of switches
# NCCL's node type by the prefix of `class` (src/graph/topo.cc, kvDictPciClass); every other
# class is a PCI node that the devices below it share.
DEVICE_CLASSES = {"0x03": 0x03, "0x02": 0x02}  # GPU (display controller), NIC (network controller)
DEVICE_KINDS = {0x03: "a GPU", 0x02: "a NIC"}


class NotATopologyFile(ValueError):
    """The file is no NCCL topology file cdigen can use; the message says why."""


def conf_topo_file(text: bytes) -> str | None:
    """NCCL_TOPO_FILE as /etc/nccl.conf sets it, read as NCCL reads it (src/misc/param.cc,
    `setEnvFile`): each line is KEY=VALUE split at its first '=', nothing trimmed, the first
    line of a key wins (setenv without overwrite), so a `#` line is never this key. None: not
    set, or set empty."""
    for line in text.split(b"\n"):
        key, sep, value = line.partition(b"=")
        if sep and key == b"NCCL_TOPO_FILE":
            return os.fsdecode(value) or None
    return None


def parse(data: bytes) -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """PCI address (lower case) -> (class: 0x03 GPU or 0x02 NIC, its <cpu>, the <pci> elements
    above it, top first) for each GPU and NIC of an NCCL topology file; elements are numbered
    in document order. NotATopologyFile when it is not one, or names a device twice."""
    from xml.parsers import expat

    parser = expat.ParserCreate()
    places: dict[str, tuple[int, int, tuple[int, ...]]] = {}
    open_elements: list[tuple[str, int]] = []  # (name, number)
    count = 0

    def where() -> str:
        return f"line {parser.CurrentLineNumber}"

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if not open_elements and name != "system":
            raise NotATopologyFile(f"not an NCCL topology file: the root element is <{one_line(name, 20)}>")
        if len(open_elements) >= MAX_DEPTH:
            raise NotATopologyFile(f"{where()}: elements nested deeper than {MAX_DEPTH}")
        if name == "pci":
            busid = attrs.get("busid", "").lower()
            if not is_pci_address(busid):
                raise NotATopologyFile(f"{where()}: <pci busid={quoted(attrs.get('busid'), 30)}>: not a PCI address")
            cls = DEVICE_CLASSES.get(attrs.get("class", "")[:4])
            if cls is not None:
                cpus = [n for tag, n in open_elements if tag == "cpu"]
                if not cpus:
                    raise NotATopologyFile(f"{where()}: <pci busid={busid!r}> is not inside a <cpu>")
                if busid in places:
                    raise NotATopologyFile(f"{where()}: names {busid} twice")
                places[busid] = (cls, cpus[-1], tuple(n for tag, n in open_elements if tag == "pci"))
        open_elements.append((name, count))

    def refuse_doctype(*_args) -> None:
        # NCCL's files have none. Without a DOCTYPE there is no entity to expand (expat only
        # limits expansion since 2.4.0, and Python may be linked to an older one) and no
        # external entity to fetch.
        raise NotATopologyFile(f"{where()}: a DOCTYPE declaration (NCCL's files have none)")

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _name: open_elements.pop()
    parser.StartDoctypeDeclHandler = refuse_doctype
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise NotATopologyFile(f"not well-formed XML: {expat.ErrorString(e.code)}, line {e.lineno}") from None
    return places


def read_topology(
    topo: Topology, root: str, path: str | None = None, host_prefix: str | None = None
) -> list[ScanWarning]:
    """Set `topo.nccl_places` and `topo.nccl_topo_path` from the NCCL topology file: `path`
    (on this machine: --nccl-topo), else the NCCL_TOPO_FILE that /etc/nccl.conf under `root`
    names, taken under `root` (its path in the spec under `host_prefix`, else `root`). A file
    that cannot be used is one warning and leaves both unset: the classes come from sysfs
    alone. BadArgument: `path` cannot be read."""
    if path is not None:
        try:
            data = read_regular(path, MAX_FILE_BYTES)
        except UnreadableFile as e:
            raise BadArgument("nccl_topo", f"{one_line(path, 200)}: {e.reason}") from None
        named, argument, shown = path, "nccl_topo", os.path.abspath(path)
    else:
        try:
            conf = read_regular(os.path.join(root, CONF), MAX_CONF_BYTES)
        except UnreadableFile as e:
            return [] if e.missing else [ScanWarning(f"/{CONF}", f"unreadable: {e.reason}")]
        name = conf_topo_file(conf)
        if name is None:
            return []
        from cdigen.scan.driver import Root

        rel = Root(root).resolve(name)  # its links followed inside the root
        named, argument = "/" + name.lstrip("/"), None
        try:
            if not rel:
                raise UnreadableFile("missing", missing=True)
            data = read_regular(os.path.join(root, rel), MAX_FILE_BYTES)
        except UnreadableFile as e:
            why = "missing" if e.missing else f"unreadable: {e.reason}"
            return _ignored(named, argument, f"{why} (named by NCCL_TOPO_FILE in /{CONF})")
        shown = os.path.join(host_prefix or root, rel)
    try:
        places = parse(data)
    except NotATopologyFile as e:
        return _ignored(named, argument, str(e))
    absent = [b for b, (cls, _, _) in places.items() if b not in topo.pci or (topo.pci[b].class_code or 0) >> 16 != cls]
    if absent:
        first, more = absent[0], f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        kind = DEVICE_KINDS[places[first][0]]
        return _ignored(named, argument, f"names {first} ({kind}){more}, which this host does not have")
    topo.nccl_places = {bdf: place[1:] for bdf, place in places.items()}
    topo.nccl_topo_path = shown
    return []


def _ignored(path: str, argument: str | None, why: str) -> list[ScanWarning]:
    return [ScanWarning(path, f"{why}; ignored, classes from sysfs alone", argument)]
