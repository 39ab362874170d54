"""Kubelet's side of the node agent: the DevicePlugin service on the plugin's socket and the
registration with kubelet, kept up while kubelet comes and goes.

The service is wired with grpc's generic handlers from the messages of deviceplugin_pb2 (no
generated stubs, so no grpcio version is pinned by generated code). The registration loop:

1. wait for the kubelet directory (absent: said once, retried with backoff up to BACKOFF_MAX_S);
2. serve on DIR/<socket_name> (a stale file of ours is removed first): kubelet dials it
   as soon as it accepts the registration;
3. wait for DIR/kubelet.sock (inotify: no polling), then Register (version v1beta1, the
   socket's file name, the resource, GetPreferredAllocation available); a failure is said
   once and retried with backoff;
4. watch the directory: when our socket is removed or kubelet.sock is made anew (kubelet
   restarted, which removes every plugin socket), stop serving and go to 1.
"""

import contextlib
import os
import threading

import grpc

from cdigen.node import deviceplugin_pb2 as api
from cdigen.node.inventory import DeviceTable, UnknownDevice
from cdigen.node.log import Log
from cdigen.node.watch import Inotify, Stop

VERSION = "v1beta1"
KUBELET_SOCKET = "kubelet.sock"
REGISTER_TIMEOUT_S = 5.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 30.0


def options() -> api.DevicePluginOptions:
    return api.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)


class Service:
    """The DevicePlugin methods over a DeviceTable."""

    def __init__(self, table: DeviceTable, stopping: Stop) -> None:
        self.table, self.stopping = table, stopping

    def get_options(self, request, context):
        return options()

    def list_and_watch(self, request, context):
        """The whole list now, and again after each change, until kubelet hangs up or the
        server stops (a callback wakes the wait then)."""
        table = self.table

        def wake() -> None:
            with table.lock:
                table.changed.notify_all()

        context.add_callback(wake)
        seen = None
        while context.is_active() and not self.stopping.is_set():
            with table.lock:
                while table.version == seen and context.is_active() and not self.stopping.is_set():
                    table.changed.wait()
                seen = table.version
            yield api.ListAndWatchResponse(devices=[device(*row) for row in table.listing()])

    def preferred(self, request, context):
        out = api.PreferredAllocationResponse()
        for r in request.container_requests:
            try:
                ids = self.table.preferred(
                    list(r.available_deviceIDs), list(r.must_include_deviceIDs), r.allocation_size
                )
            except UnknownDevice as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            out.container_responses.add(deviceIDs=ids)
        return out

    def allocate(self, request, context):
        out = api.AllocateResponse()
        for r in request.container_requests:
            try:
                names, envs, annotations = self.table.allocation(list(r.devices_ids))
            except UnknownDevice as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            out.container_responses.add(
                envs=envs, annotations=annotations, cdi_devices=[api.CDIDevice(name=n) for n in names]
            )
        return out

    def pre_start(self, request, context):
        return api.PreStartContainerResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(fn, req):
            return grpc.unary_unary_rpc_method_handler(fn, req.FromString, lambda m: m.SerializeToString())

        return grpc.method_handlers_generic_handler(
            f"{VERSION}.DevicePlugin",
            {
                "GetDevicePluginOptions": unary(self.get_options, api.Empty),
                "ListAndWatch": grpc.unary_stream_rpc_method_handler(
                    self.list_and_watch, api.Empty.FromString, lambda m: m.SerializeToString()
                ),
                "GetPreferredAllocation": unary(self.preferred, api.PreferredAllocationRequest),
                "Allocate": unary(self.allocate, api.AllocateRequest),
                "PreStartContainer": unary(self.pre_start, api.PreStartContainerRequest),
            },
        )


def device(id: str, health: str, numa: int | None) -> api.Device:
    topology = api.TopologyInfo(nodes=[api.NUMANode(ID=numa)]) if numa is not None else None
    return api.Device(ID=id, health=health, topology=topology)


class Plugin:
    """The registration loop (module docstring) on a thread of its own; `stop()` ends it and
    removes the socket."""

    def __init__(self, table: DeviceTable, log: Log) -> None:
        self.table, self.log = table, log
        settings = table.settings
        self.dir = settings.kubelet_dir
        self.socket = os.path.join(self.dir, settings.socket_name)
        self.kubelet = os.path.join(self.dir, KUBELET_SOCKET)
        self.stopping = Stop()
        self.server = None
        self.thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self._stop_serving()

    def _loop(self) -> None:
        backoff = BACKOFF_FIRST_S
        while not self.stopping.is_set():
            try:
                registered = self._session()
            except Exception as e:  # whatever goes wrong, kubelet's side starts over, said once
                self.log.set("plugin", f"error: device plugin: {type(e).__name__}: {e}; starting over")
                registered = False
            self._stop_serving()
            backoff = BACKOFF_FIRST_S if registered else min(backoff * 2, BACKOFF_MAX_S)
            self.stopping.wait(0 if registered else backoff)

    def _session(self) -> bool:
        """Serve, register, and watch until kubelet restarts. Whether it was registered."""
        if not os.path.isdir(self.dir):
            self.log.set("kubelet", f"waiting for kubelet: no directory {self.dir}")
            return False
        inotify = Inotify()
        try:
            if not inotify.watch(self.dir):
                return False
            self._serve()
            while not os.path.exists(self.kubelet):
                self.log.set("kubelet", f"waiting for kubelet: no {self.kubelet}")
                if self.stopping.is_set() or self._gone(inotify.wait(None, self.stopping)):
                    return False
            since = os.stat(self.kubelet).st_ino
            error = self._register()
            if error:
                self.log.set(
                    "kubelet", f"error: registering {self.table.settings.resource} with kubelet: {error}; retrying"
                )
                return False
            self.log.clear("plugin")
            self.log.clear("kubelet")
            self.log.say(f"registered {self.table.settings.resource} with kubelet, serving {self.socket}")
            while not self.stopping.is_set():
                events = inotify.wait(None, self.stopping)
                if self._gone(events) or not _same(self.kubelet, since):
                    self.log.set("kubelet", "kubelet restarted: registering again")
                    return True
            return True
        finally:
            inotify.close()

    def _gone(self, events) -> bool:
        """Whether our socket or the directory went away."""
        return any(mask & (Inotify.DELETE_SELF | Inotify.MOVE_SELF) for mask, _ in events) or not os.path.exists(
            self.socket
        )

    def _serve(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"))
        self.server.add_generic_rpc_handlers((Service(self.table, self.stopping).handler(),))
        self.server.add_insecure_port(f"unix://{self.socket}")
        self.server.start()

    def _stop_serving(self) -> None:
        if self.server is not None:
            self.server.stop(grace=0).wait(2)
            self.server = None
            with self.table.lock:  # wake the ListAndWatch streams, so that they end
                self.table.changed.notify_all()

    def _register(self) -> str | None:
        """Register with kubelet; None, or why not."""
        settings = self.table.settings
        request = api.RegisterRequest(
            version=VERSION, endpoint=settings.socket_name, resource_name=settings.resource, options=options()
        )
        with grpc.insecure_channel(f"unix://{self.kubelet}") as channel:
            register = channel.unary_unary(
                f"/{VERSION}.Registration/Register",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=api.Empty.FromString,
            )
            try:
                register(request, timeout=REGISTER_TIMEOUT_S, wait_for_ready=True)
            except grpc.RpcError as e:
                return f"{e.code().name}: {e.details()}"
        return None


def _same(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except FileNotFoundError:
        return False
