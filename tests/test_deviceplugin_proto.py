"""cdigen/node/deviceplugin_pb2.py is generated from cdigen/node/deviceplugin.proto and committed
(cdigen/node/__init__.py says why): the two must describe the same messages and services, field
by field, and the numbers must be kubelet's v1beta1 ones that the wire depends on."""

import re
from pathlib import Path

from cdigen.node import deviceplugin_pb2 as api

PROTO = Path(__file__).resolve().parent.parent / "cdigen/node/deviceplugin.proto"


def proto_text() -> str:
    return re.sub(r"//[^\n]*", "", PROTO.read_text())


def test_messages_agree_with_the_proto_file():
    declared = {}
    for name, body in re.findall(r"message (\w+) \{([^}]*)\}", proto_text()):
        fields = re.findall(r"(repeated |)(map<\w+, \w+>|\w+) (\w+) = (\d+);", body)
        declared[name] = {field: (int(number), label + kind) for label, kind, field, number in fields}
    generated = {}
    for name, message in api.DESCRIPTOR.message_types_by_name.items():
        generated[name] = {}
        for f in message.fields:
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                kind = "map<string, string>"
            else:
                kind = ("repeated " if f.is_repeated else "") + (
                    f.message_type.name if f.message_type else {9: "string", 8: "bool", 3: "int64", 5: "int32"}[f.type]
                )
            generated[name][f.name] = (f.number, kind)
    assert generated == declared


def test_services_agree_with_the_proto_file():
    declared = {
        (service, method, request, bool(stream), response)
        for service, body in re.findall(r"service (\w+) \{(.*?)\n\}", proto_text(), re.S)
        for method, request, stream, response in re.findall(r"rpc (\w+)\((\w+)\) returns \((stream )?(\w+)\)", body)
    }
    generated = {
        (s.name, m.name, m.input_type.name, m.server_streaming, m.output_type.name)
        for s in api.DESCRIPTOR.services_by_name.values()
        for m in s.methods
    }
    assert generated == declared
    assert api.DESCRIPTOR.package == "v1beta1"  # the gRPC paths: /v1beta1.DevicePlugin/Allocate...


def test_kubelets_wire_numbers():
    """The numbers kubelet's API gives the fields cdigen reads or writes."""
    fields = {
        (m, f.name): f.number for m, message in api.DESCRIPTOR.message_types_by_name.items() for f in message.fields
    }
    assert fields[("RegisterRequest", "version")] == 1 and fields[("RegisterRequest", "endpoint")] == 2
    assert fields[("RegisterRequest", "resource_name")] == 3 and fields[("RegisterRequest", "options")] == 4
    assert fields[("DevicePluginOptions", "get_preferred_allocation_available")] == 2
    assert fields[("Device", "ID")] == 1 and fields[("Device", "health")] == 2 and fields[("Device", "topology")] == 3
    assert fields[("ContainerAllocateResponse", "annotations")] == 4
    assert fields[("ContainerAllocateResponse", "cdi_devices")] == 5
    assert fields[("ContainerPreferredAllocationRequest", "allocation_size")] == 3
