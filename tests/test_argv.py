"""The one parser of the hand-parsed commands (cdigen/argv.py) and the help text made from the
same tables (cdigen/cli/argv.py): the rules, and that every command's --help shows exactly the
options its table parses."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdigen import hookentry
from cdigen.argv import Argument, Command, Option, parse
from cdigen.cli import apply, dan, hook, ldcache, netdev
from cdigen.cli.argv import WIDTH, help_text
from cdigen.errors import UsageError
from tests.helpers.proc import run_cdigen

TOY = Command(
    "toy",
    (
        Option("--value", "V", "A value."),
        Option("--many", "M", "Many values.", repeated=True),
        Option("--flag", None, "A flag."),
        Option("--with-default", "D", "Has a default.", default="d"),
    ),
    (Argument("FIRST", "Required."), Argument("REST", "Any number.", repeated=True)),
)
ONCE = Command(
    "once", (Option("--value", "V", "A value."),), (Argument("ONLY", "Optional.", required=False),), once=True
)


def test_options_and_arguments_in_any_order_both_spellings():
    args = parse(["a", "--value=-x", "b", "--many", "-m", "--flag", "--many=", "c"], TOY)
    assert args == {
        "value": "-x",
        "many": ["-m", ""],
        "flag": True,
        "with_default": "d",
        "first": "a",
        "rest": ["b", "c"],
    }
    assert parse(["a"], TOY) == {
        "value": None,
        "many": [],
        "flag": False,
        "with_default": "d",
        "first": "a",
        "rest": [],
    }
    assert parse(["--", "--value", "-h"], TOY)["rest"] == ["-h"] and parse(["--", "-a"], TOY)["first"] == "-a"
    assert parse(["-"], TOY)["first"] == "-"
    assert parse(["a", "--value", "1", "--value", "2"], TOY)["value"] == "2"  # the last wins
    assert parse([], ONCE) == {"value": None, "only": None}


@pytest.mark.parametrize("argv", [["-h"], ["a", "--help"], ["-h", "--bogus"], ["--value", "x", "-h"]])
def test_help_anywhere_before_the_double_dash(argv):
    assert parse(argv, TOY) is None


@pytest.mark.parametrize(
    "argv, command, message",
    [
        ([], TOY, "missing argument FIRST"),
        (["a", "--bogus=1"], TOY, "no such option: '--bogus'"),
        (["a", "--value"], TOY, "option --value requires an argument (V)"),
        (["a", "--flag=yes"], TOY, "option --flag does not take a value"),
        (["a", "--help=1"], TOY, "no such option: '--help'"),
        (["--value", "1", "--value=2"], ONCE, "option --value given twice"),
        (["a", "b"], ONCE, "unexpected argument 'b'"),
        (["x" * 1000, "y" * 1000], ONCE, f"unexpected argument '{'y' * 56}..."),
    ],
)
def test_mistakes(argv, command, message):
    with pytest.raises(UsageError) as e:
        parse(argv, command)
    assert str(e.value) == message


def test_help_text_from_the_table():
    text = help_text(TOY, "Summary.", "Description.\n")
    assert text.startswith("usage: cdigen toy [OPTIONS] FIRST [REST]...\n\nSummary.\n\nDescription.\n\narguments:\n")
    assert "  --many M                  Many values. Repeatable.\n" in text
    assert "  --with-default D          Has a default. Default: d.\n" in text
    assert text.endswith("  -h, --help                Show this message and exit.\n")
    assert help_text(ONCE, "S.").startswith("usage: cdigen once [OPTIONS] [ONLY]\n")
    assert max(len(line) for line in help_text(apply.COMMAND, apply.SUMMARY).splitlines()) <= WIDTH


HAND_PARSED = [
    (["apply"], apply.COMMAND),
    (["hook"], hookentry.HOOK),
    (["hook", "ldcache"], hookentry.LDCACHE_COMMAND),
    (["dan"], dan.COMMAND),
    (["netdev", "restore"], netdev.RESTORE),
]


@pytest.mark.parametrize("words, command", HAND_PARSED, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_each_command_shows_the_options_it_parses(words, command):
    text = run_cdigen(*words, "--help", check=0).stdout
    assert text.startswith(f"usage: cdigen {' '.join(words)}")
    shown = {line.split()[0] for line in text.splitlines() if line.startswith("  -")}
    assert shown == {o.name for o in command.options} | {"-h,"}
    for option in command.options:
        assert f"  {option.name} {option.metavar or ''}".rstrip() in text


def test_cdigen_help_lists_the_hand_parsed_commands_with_their_own_summary():
    text = " ".join(run_cdigen("--help", check=0).stdout.split())
    for summary in (apply.SUMMARY, hook.SUMMARY, dan.SUMMARY):
        assert " ".join(summary.split()[:5]) in text
    for name in ("runtime", "cni", "netdev"):
        assert f" {name} " in text
    assert "restore Return every interface" in " ".join(run_cdigen("netdev", "--help", check=0).stdout.split())
    assert ldcache.SUMMARY.split(":")[0] in " ".join(run_cdigen("hook", "ldcache", "-h", check=0).stdout.split())


tokens = st.sampled_from(["--value", "--value=", "--many", "--flag", "--flag=", "--", "-", "-h", "--bogus", "x", "="])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(tokens, st.text(max_size=8)), max_size=8),
    st.sampled_from([TOY, ONCE, *(c for _, c in HAND_PARSED)]),
)
def test_any_argv_parses_asks_for_help_or_is_one_short_usage_error(argv, command):
    try:
        args = parse(argv, command)
    except UsageError as e:
        assert "\n" not in str(e) and len(str(e)) < 120
        return
    if args is None:
        assert {"-h", "--help"} & set(argv)
        return
    assert set(args) == {o.key for o in command.options} | {a.key for a in command.arguments}
