"""The node agent's process: settings, then the spec kept true (watch.py) on the main thread
and, for `cdigen device-plugin`, kubelet's side (plugin.py) on another. Never a crash loop: a
config file that cannot be used is said once, and the agent waits for the file to change."""

import os

from cdigen.errors import EXIT_FAILURE, EXIT_NO_GPU, EXIT_OK, CdigenError
from cdigen.node import config
from cdigen.node.inventory import DeviceTable, netdev_table
from cdigen.node.log import Log
from cdigen.node.watch import Inotify, Keeper, Stop, run, uevent_socket

RETRY_S = 10.0


def settings_of(path: str | None) -> config.Settings:
    """The settings of `path`; None: of the default file, or the defaults when it is absent."""
    return config.load(path or config.DEFAULT_CONFIG, missing_ok=path is None)


def keeper(settings: config.Settings, log: Log) -> Keeper:
    from cdigen import hookentry

    hook_path = settings.hook_path or hookentry.default_hook_path()
    return Keeper(settings, netdev_table(settings), hook_path, DeviceTable(settings), log)


def refresh_once(path: str | None) -> int:
    """`cdigen refresh`: one scan, the spec written if it changed. Exit 1 when it cannot be
    written, 4 without a GPU; bad settings raise (one line, exit 3)."""
    log = Log()
    result = keeper(settings_of(path), log).refresh()
    if "write" in log.conditions:  # said by the keeper
        return EXIT_FAILURE
    return EXIT_OK if result.spec is not None else EXIT_NO_GPU


def _ready(path: str | None, log: Log, stop: Stop) -> Keeper:
    """The keeper of the first usable settings: a bad file is said once, then read again
    when its directory changes (every RETRY_S where it cannot be watched)."""
    watched = os.path.dirname(os.path.abspath(path or config.DEFAULT_CONFIG))
    inotify = None
    try:
        while True:
            try:
                made = keeper(settings_of(path), log)
                log.clear("config", "the config file is usable now")
                return made
            except CdigenError as e:
                log.set("config", f"error: {e}; waiting for the config file to change")
            if inotify is None:
                inotify = Inotify()
            inotify.wait(None if inotify.watch(watched) else RETRY_S, stop)
            if stop.is_set():
                raise SystemExit(0)
    finally:
        if inotify is not None:
            inotify.close()


def run_agent(path: str | None, with_plugin: bool, events=None) -> int:
    """`cdigen device-plugin` (with_plugin) and `cdigen refresh --watch`, until SIGTERM or
    SIGINT. `events`: a socket that delivers uevents (default: the kernel's)."""
    import signal

    log = Log()
    stop = Stop()

    def stopped(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, stopped)
    signal.signal(signal.SIGINT, stopped)
    keep = _ready(path, log, stop)
    if events is None:
        events = uevent_socket(log)
    keep.refresh_logged()
    plugin = None
    if with_plugin:
        from cdigen.node.plugin import Plugin

        plugin = Plugin(keep.table, log)
        plugin.start()
    try:
        run(keep, events, stop)
    finally:
        if plugin is not None:
            plugin.stop()
    return 0
