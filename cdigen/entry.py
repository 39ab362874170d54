"""Console-script entry point. What runs at every container start (the CNI plugin, the runtime
shim, `hook`, `apply`, `dan`, `netdev restore`) and the node agent (kubelet waits for its first
answer) are dispatched here without typer or rich, whose import costs more than that work;
every other command goes through the typer app.
"""

import os
import sys

from cdigen.errors import EXIT_FAILURE, CdigenError


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"cdigen: error: {message}\n")
    return code


RUNTIME_NAME = "cdigen-runtime"  # the shim's own executable name (a link to `cdigen`)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        name = os.path.basename(sys.argv[0])
        if name == "cdigen" and not argv and "CNI_COMMAND" in os.environ:
            argv = ["cni"]  # a CNI plugin: the CNI bin dir's `cdigen`, run by libcni
        elif name == RUNTIME_NAME:
            argv = ["runtime", *argv]  # engines pass the runtime's arguments and nothing else
    if argv[:1] in (["--version"], ["-V"]):
        from cdigen import __version__

        sys.stdout.write(f"cdigen {__version__}\n")
        return 0
    # These two report their own errors: as CNI error JSON, and in the runtime's log.
    if argv[:1] == ["cni"]:
        from cdigen.cli.cni import main as cni_main

        return cni_main(argv[1:])
    if argv[:1] == ["runtime"]:
        from cdigen.cli.runtime import main as runtime_main

        return runtime_main(argv[1:])
    try:
        if argv[:2] == ["hook", "ldcache"]:  # the driver libraries' createContainer hook: no netdev rules
            from cdigen.cli.ldcache import main as ldcache_main

            return ldcache_main(argv[2:])
        if argv[:1] == ["hook"]:
            from cdigen.cli.hook import main as hook_main

            return hook_main(argv[1:])
        if argv[:1] == ["apply"]:
            from cdigen.cli.apply import main as apply_main

            return apply_main(argv[1:])
        if argv[:1] == ["dan"]:
            from cdigen.cli.dan import main as dan_main

            return dan_main(argv[1:])
        if argv[:1] in (["device-plugin"], ["refresh"]):  # kubelet waits for the first answer
            from cdigen.cli import deviceplugin

            main = deviceplugin.device_plugin_main if argv[0] == "device-plugin" else deviceplugin.refresh_main
            return main(argv[1:])
        if argv[:2] == ["netdev", "restore"]:
            from cdigen.cli.netdev import main as netdev_restore_main

            return netdev_restore_main(argv[2:])
        from cdigen.cli.app import run_app

        return run_app(argv)
    except CdigenError as e:
        from cdigen.cli import error_line

        return _fail(error_line(e), e.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as e:  # never a traceback on the user's terminal
        if os.environ.get("CDIGEN_DEBUG"):
            raise
        return _fail(f"internal error: {type(e).__name__}: {e}", EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
