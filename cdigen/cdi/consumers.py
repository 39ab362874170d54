"""Which container engine releases load which cdiVersion.

An engine vendors one release of the Go CDI library; library vX.Y accepts `cdiVersion` up to
X.Y.0 and rejects fields it does not know. The ladders below come from each engine's
go.mod/vendor.mod at its release tags (docs/cdi-conformance.md, "Versions"): from the release
named on, every later release accepts at least that cdiVersion.
"""

from cdigen.cdi.spec import version_key
from cdigen.errors import BadArgument
from cdigen.values import quoted

# engine -> [(first release, newest cdiVersion it and every later release accept), ...]
LADDERS: dict[str, list[tuple[str, str]]] = {
    "containerd": [
        ("1.7.0", "0.5.0"),
        ("1.7.12", "0.6.0"),
        ("1.7.16", "0.7.0"),
        ("1.7.27", "0.8.0"),
        ("2.0.5", "1.0.0"),
        ("2.2.1", "1.1.0"),
    ],
    "crio": [
        ("1.25.0", "0.5.0"),
        ("1.28.0", "0.6.0"),
        ("1.30.0", "0.7.0"),
        ("1.31.0", "0.8.0"),
        ("1.33.0", "1.0.0"),
        ("1.35.0", "1.1.0"),
    ],
    "docker": [("25.0.0", "0.6.0"), ("26.1.0", "0.7.0"), ("27.4.0", "0.8.0"), ("28.1.0", "1.0.0"), ("29.2.0", "1.1.0")],
    "nerdctl": [("2.1.0", "1.0.0"), ("2.2.1", "1.1.0")],
    "podman": [
        ("4.3.0", "0.5.0"),
        ("4.7.0", "0.6.0"),
        ("5.1.0", "0.7.0"),
        ("5.2.0", "0.8.0"),
        ("5.5.0", "1.0.0"),
    ],
}
ANY = "any"  # every engine release above: the default target


def targets() -> list[str]:
    """The --for values that help texts and the README list: each engine at its first release
    that loads CDI specs (a later release of it is taken too), then `any`."""
    return [f"{engine}-{_short(ladder[0][0])}" for engine, ladder in LADDERS.items()] + [ANY]


def targets_help() -> str:
    """`targets()` as the help texts of --for say it."""
    return f"{', '.join(targets()[:-1])} or a later release of one, or {ANY}"


def _short(release: str) -> str:
    """ "25.0.0" -> "25", "1.7.0" -> "1.7": a release as a series names it."""
    while release.endswith(".0"):
        release = release[:-2]
    return release


def max_version_for(target: str) -> str:
    """The newest cdiVersion that every release matching `target` loads: "podman-4" (every
    4.x with CDI support), "containerd-1.7.20", "docker-28", or "any". BadArgument("for")
    otherwise. A series stands for its oldest release: "containerd-1.7" is 1.7.0."""
    if target == ANY:
        return min((ladder[0][1] for ladder in LADDERS.values()), key=version_key)
    engine, sep, release = target.partition("-")
    if not sep or engine not in LADDERS:
        raise BadArgument("for", f"{quoted(target)}: expected ENGINE-VERSION ({', '.join(LADDERS)}) or {ANY}")
    try:
        wanted = version_key(release)
    except ValueError:
        raise BadArgument("for", f"{quoted(target)}: {quoted(release)} is not a version like 1.7 or 2.2.1") from None
    ladder = LADDERS[engine]
    oldest = wanted + (0,) * (3 - len(wanted))
    accepted = [version for first, version in ladder if version_key(first) <= oldest]
    if not accepted and version_key(ladder[0][0])[: len(wanted)] == wanted:
        accepted = [ladder[0][1]]  # the series begins before CDI support: its first release with it
    if not accepted:
        raise BadArgument("for", f"{quoted(target)}: {engine} loads CDI specs from {LADDERS[engine][0][0]} on")
    return accepted[-1]


def first_releases(cdi_version: str) -> dict[str, str | None]:
    """engine -> its first release from which on every release loads `cdi_version` (None: none yet)."""
    needed = version_key(cdi_version)
    return {
        engine: next((first for first, version in ladder if version_key(version) >= needed), None)
        for engine, ladder in LADDERS.items()
    }
