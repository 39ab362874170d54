"""`cdigen netdev restore`: bring every device that cdigen marked home (cdigen/hook/restore.py).

Operators run it after a node lost track (a poststop hook that never ran, a NIC that came back
late), and boot units may run it. cdigen/entry.py dispatches `netdev restore` here without
importing typer, so that it stays as quick as the poststop hook (docs/benchmarks.md);
`register` adds the `netdev` group to the typer app only so that `cdigen --help` and
`cdigen netdev --help` list it.
"""

import sys

from cdigen.errors import CdigenError, UsageError

SUMMARY = "Bring home the netdevs that cdigen put into containers (host name, MTU, alias)."
RESTORE_SUMMARY = (
    "Return every interface carrying cdigen's record in its alias (or only the HOSTIFs named) to "
    "its host name, host MTU, up state and earlier alias; report each on stdout."
)
USAGE = """\
usage: cdigen netdev restore [HOSTIF]...

Bring home the network interfaces that cdigen put into containers. Each one carries cdigen's
record in its interface alias ("cdigen host=HOSTIF mtu=MTU up=0|1"); a physical NIC keeps it
when the kernel returns it from a dead container namespace as net0 or devN. Every such
interface in this network namespace (or only those of the HOSTIFs named) gets back its host
name, host MTU, up state and earlier alias. Each is reported on stdout.

Exit status: 0 when every interface is home; 1 when any could not be restored (its host name
is taken, say), after trying all the others.

options:
  -h, --help   show this message and exit
"""


def parse_args(argv: list[str]) -> list[str] | None:
    """The HOSTIF arguments of `netdev restore`; None when help was asked for."""
    from cdigen import netdev

    if any(arg in ("-h", "--help") for arg in argv):
        return None
    for arg in argv:
        if arg.startswith("-"):
            raise UsageError(f"netdev restore: unexpected option {arg!r} (see cdigen netdev restore --help)")
        try:
            netdev.check_ifname(arg, "HOSTIF")
        except netdev.NetdevError as e:
            raise UsageError(f"netdev restore: {e}") from None
    return list(dict.fromkeys(argv))


def main(argv: list[str]) -> int:
    """`cdigen netdev restore ARGS` (argv after `restore`)."""
    hosts = parse_args(argv)
    if hosts is None:
        sys.stdout.write(USAGE)
        return 0
    from cdigen.hook.restore import restore_all

    done, failures = restore_all(hosts)
    for line in done:
        sys.stdout.write(f"{line}\n")
    for line in failures:
        sys.stdout.write(f"not restored: {line}\n")
    if not done and not failures:
        sys.stdout.write("nothing to restore: no interface carries cdigen's record\n")
    if failures:
        count = f"{len(failures)} interface{'s' if len(failures) > 1 else ''}"
        raise CdigenError(f"netdev restore: {count} not restored: {'; '.join(failures)}")
    return 0


UDEV_RULE_SUMMARY = (
    "Print a udev rule that runs `cdigen netdev restore` whenever an interface carrying cdigen's "
    "record arrives in the host's namespace: a NIC that comes back late is brought home all the same."
)
UDEV_RULE_FILE = "/etc/udev/rules.d/90-cdigen-netdev.rules"


def udev_rule(cdigen: str) -> str:
    """The rules file: on the kernel's `add` uevent of a netdev (a NIC entering this namespace,
    a dead container's included: docs/netdev.md), when its alias holds cdigen's record."""
    from cdigen.hook.record import PREFIX

    if any(c in cdigen for c in '"\\%$ \n') or not cdigen.startswith("/"):
        raise UsageError(
            f"netdev udev-rule: --cdigen {cdigen!r}: expected an absolute path without spaces, quotes, % or $"
        )
    return (
        f"# {UDEV_RULE_FILE} (`cdigen netdev udev-rule`; then `udevadm control --reload`).\n"
        "# An interface that enters the host's network namespace carrying cdigen's record in its\n"
        "# alias (a NIC the kernel returns from a dead container's namespace, however late) gets\n"
        "# its host name, MTU, addresses and bridge back.\n"
        f'ACTION=="add", SUBSYSTEM=="net", ATTR{{ifalias}}=="{PREFIX}*", RUN+="{cdigen} netdev restore"\n'
    )


def register(app) -> None:
    """The `netdev` command group of the typer app (for --help; entry.py runs `restore`)."""
    from typing import Annotated

    import typer

    group = typer.Typer(name="netdev", help=SUMMARY, no_args_is_help=True)

    @group.command(name="udev-rule", help=UDEV_RULE_SUMMARY)
    def udev_rule_command(
        cdigen: Annotated[
            str | None,
            typer.Option("--cdigen", metavar="PATH", help="The cdigen executable udev runs (default: this one)."),
        ] = None,
    ) -> None:
        from cdigen.hookentry import default_hook_path

        sys.stdout.write(udev_rule(cdigen or default_hook_path()))

    @group.command(
        help=RESTORE_SUMMARY + " (cdigen netdev restore --help)",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )
    def restore(ctx: typer.Context) -> None:
        raise typer.Exit(main(list(ctx.args)))

    app.add_typer(group, name="netdev")
