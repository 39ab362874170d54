"""`cdigen hook` in `cdigen --help`. cdigen/entry.py never routes `hook` here: a runtime starts
it at every container creation, so cdigen.hook.main parses its arguments without typer."""

import typer

from cdigen.cli import app


@app.command()
def hook(
    netdev: list[str] = typer.Option(
        [], "--netdev", metavar="HOSTIF=name=..,address=..,mask=..,mtu=..",
        help="A host interface and its container settings (repeatable). Without it: every "
             "linux.netDevices entry of config.json; that entry's keys win over these."),
) -> None:
    """OCI createRuntime hook: move, rename, address, set the MTU of and bring up netdevs in the container's network namespace (state JSON on stdin); rolls back on failure."""  # noqa: E501 (one line: typer keeps breaks)
    from cdigen.hook import main

    args = [a for value in netdev for a in ("--netdev", value)]
    raise typer.Exit(main(args))
