"""A kubelet stand-in for the device plugin tests, on the same gRPC library.

It serves `v1beta1.Registration` on DIR/kubelet.sock and, when a plugin registers, does what
kubelet's device manager does: checks the version, dials the plugin's socket (the endpoint is
a file name in DIR), asks for its options, and reads its ListAndWatch stream on a thread,
keeping every list it sends. `allocate` and `preferred` call the plugin as kubelet does at
pod admission. `restart` is kubelet's restart: its server goes, every socket in DIR is
removed, and a new kubelet.sock is made.
"""

import os
import threading
import time

import grpc

from cdigen.node import deviceplugin_pb2 as api


def _unary(channel, service: str, method: str, response):
    return channel.unary_unary(
        f"/v1beta1.{service}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )


class Kubelet:
    def __init__(self, directory) -> None:
        self.dir = str(directory)
        self.registrations: list[api.RegisterRequest] = []
        self.lists: list[list[tuple[str, str, list[int]]]] = []  # every ListAndWatch answer
        self.options: api.DevicePluginOptions | None = None
        self.changed = threading.Condition()
        self.server = None
        self.channel = None

    # ------------------------------------------------------------------ kubelet's own service
    def start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        self.server = grpc.server(_executor())
        handler = grpc.method_handlers_generic_handler(
            "v1beta1.Registration",
            {
                "Register": grpc.unary_unary_rpc_method_handler(
                    self._register, api.RegisterRequest.FromString, lambda m: m.SerializeToString()
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix://{os.path.join(self.dir, 'kubelet.sock')}")
        self.server.start()

    def _register(self, request, context):
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported version {request.version!r}")
        with self.changed:
            self.registrations.append(request)
            self.changed.notify_all()
        threading.Thread(target=self._dial, args=(request.endpoint,), daemon=True).start()
        return api.Empty()

    def _dial(self, endpoint: str) -> None:
        channel = grpc.insecure_channel(f"unix://{os.path.join(self.dir, endpoint)}")
        self.channel = channel
        self.options = _unary(channel, "DevicePlugin", "GetDevicePluginOptions", api.DevicePluginOptions)(
            api.Empty(), timeout=5
        )
        stream = channel.unary_stream(
            "/v1beta1.DevicePlugin/ListAndWatch",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=api.ListAndWatchResponse.FromString,
        )(api.Empty())
        try:
            for response in stream:
                devices = [(d.ID, d.health, [n.ID for n in d.topology.nodes]) for d in response.devices]
                with self.changed:
                    self.lists.append(devices)
                    self.changed.notify_all()
        except grpc.RpcError:
            pass  # the plugin or this kubelet went away

    def restart(self) -> None:
        """As kubelet restarts: server gone, every socket of DIR removed, kubelet.sock anew."""
        self.stop()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        self.start()

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.server is not None:
            self.server.stop(grace=0).wait(5)
            self.server = None

    # ------------------------------------------------------------------ what the tests wait for
    def wait(self, predicate, timeout: float = 10.0):
        """Wait until predicate(self) is true (checked at each registration or list)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out: {len(self.registrations)} registrations, lists {self.lists[-1:]}"
                self.changed.wait(left)

    def latest(self) -> dict[str, tuple[str, list[int]]]:
        """The last list: ID -> (health, NUMA nodes)."""
        return {id: (health, numa) for id, health, numa in self.lists[-1]} if self.lists else {}

    # ------------------------------------------------------------------ kubelet's calls
    def allocate(self, *containers: list[str]) -> api.AllocateResponse:
        request = api.AllocateRequest(
            container_requests=[api.ContainerAllocateRequest(devices_ids=c) for c in containers]
        )
        return _unary(self.channel, "DevicePlugin", "Allocate", api.AllocateResponse)(request, timeout=5)

    def preferred(self, available: list[str], must: list[str], size: int) -> list[str]:
        request = api.PreferredAllocationRequest(
            container_requests=[
                api.ContainerPreferredAllocationRequest(
                    available_deviceIDs=available, must_include_deviceIDs=must, allocation_size=size
                )
            ]
        )
        response = _unary(self.channel, "DevicePlugin", "GetPreferredAllocation", api.PreferredAllocationResponse)(
            request, timeout=5
        )
        return list(response.container_responses[0].deviceIDs)


def _executor():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=4)


class Agent:
    """`cdigen device-plugin --config CONFIG` (or another node agent command) as a process,
    its stderr in a file that the test reads while it runs."""

    def __init__(self, config: str, *command: str) -> None:
        import subprocess
        import sys
        import tempfile

        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (open while the agent runs; stop() closes it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cdigen", *(command or ("device-plugin",)), "--config", config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=dict(os.environ, CDIGEN_DEBUG=""),
        )

    def lines(self) -> list[str]:
        self.log.seek(0)
        return self.log.read().splitlines()

    def wait_line(self, text: str, timeout: float = 10.0) -> str:
        """The first stderr line containing `text`, waited for."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines() if text in line]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"agent exited {self.proc.returncode}: {self.lines()}"
            assert time.monotonic() < deadline, f"no {text!r} in {self.lines()}"
            time.sleep(0.02)

    def stop(self) -> int:
        """SIGTERM, then its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(10)
        finally:
            self.log.close()
