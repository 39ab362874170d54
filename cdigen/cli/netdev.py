"""`cdigen netdev restore`: bring every device that cdigen marked home (cdigen/hook/restore.py).

Operators run it after a node lost track (a poststop hook that never ran, a NIC that came back
late), and boot units may run it. cdigen/entry.py dispatches `netdev restore` here, parsed by
hand (cdigen/argv.py), so that it stays as quick as the poststop hook; `register` adds the
`netdev` group (`udev-rule`) to the typer app.
"""

import sys

from cdigen.argv import Argument, Command
from cdigen.cli.argv import help_text, parse, usage_error
from cdigen.errors import CdigenError, UsageError
from cdigen.values import quoted

SUMMARY = "Bring home the netdevs that cdigen put into containers (host name, MTU, alias)."
RESTORE_SUMMARY = (
    "Return every interface carrying cdigen's record in its alias (or only the HOSTIFs named) to "
    "its host name, host MTU, addresses, bridge, up state and earlier alias; report each on stdout."
)
RESTORE_DESCRIPTION = """\
Each interface that cdigen put into a container carries cdigen's record in its interface
alias ("cdigen host=HOSTIF mtu=MTU up=0|1"); a physical NIC keeps it when the kernel returns
it from a dead container namespace as net0 or devN. Such an interface still in a network
namespace that no process is in (a container's, kept by a mount after the container ended)
is brought back first; one in a namespace where a process runs is left there (named, it is
reported).

Exit status: 0 when every interface is home; 1 when any could not be restored (its host name
is taken, say), after trying all the others.
"""
RESTORE = Command(
    "netdev restore",
    (),
    (Argument("HOSTIF", "A host interface name: restore only these.", repeated=True),),
)


def parse_args(argv: list[str]) -> list[str] | None:
    """The HOSTIF arguments of `netdev restore`, each once; None when help was asked for."""
    from cdigen import netdev

    args = parse(argv, RESTORE)
    if args is None:
        return None
    for host in args["hostif"]:
        try:
            netdev.check_ifname(host, "HOSTIF")
        except netdev.NetdevError as e:
            raise usage_error(RESTORE, str(e)) from None
    return list(dict.fromkeys(args["hostif"]))


def main(argv: list[str]) -> int:
    """`cdigen netdev restore ARGS` (argv after `restore`)."""
    hosts = parse_args(argv)
    if hosts is None:
        sys.stdout.write(help_text(RESTORE, RESTORE_SUMMARY, RESTORE_DESCRIPTION))
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
            f"netdev udev-rule: --cdigen {quoted(cdigen)}: expected an absolute path without spaces, quotes, % or $"
        )
    return (
        f"# {UDEV_RULE_FILE} (`cdigen netdev udev-rule`; then `udevadm control --reload`).\n"
        "# An interface that enters the host's network namespace carrying cdigen's record in its\n"
        "# alias (a NIC the kernel returns from a dead container's namespace, however late) gets\n"
        "# its host name, MTU, addresses and bridge back.\n"
        f'ACTION=="add", SUBSYSTEM=="net", ATTR{{ifalias}}=="{PREFIX}*", RUN+="{cdigen} netdev restore"\n'
    )


def register(app):
    """Add the `netdev` command group, with `udev-rule`, to the typer app; return it
    (cdigen/cli/app.py adds `restore`, which entry.py runs)."""
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

    app.add_typer(group, name="netdev")
    return group
