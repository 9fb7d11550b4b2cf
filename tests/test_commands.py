"""Plugin subcommands: the register_commands hook, clashes, sharing, and dispatch from `mm`."""

import json

import pytest

from mmcore import Command, MMCoreError, hookimpl, plugins
from mmcore.cli import main


def configure_echo(parser):
    parser.add_argument("words", nargs="+")
    parser.add_argument("--upper", action="store_true")


def run_echo(args):
    if args.words == ["fail"]:
        raise MMCoreError("echo: nothing to say")
    text = " ".join(args.words)
    print(text.upper() if args.upper else text)


ECHO = Command(name="echo", help="print the words", configure=configure_echo, run=run_echo, usage="mm echo WORDS")


class Offers:
    """A plugin that registers the given commands and nothing else."""

    def __init__(self, *commands):
        self.commands = commands

    @hookimpl
    def register_commands(self, register):
        for command in self.commands:
            register(command)


@pytest.fixture
def registry(monkeypatch):
    """The process registry with no installed plugin loaded, so `mm` sees only what a test adds."""
    monkeypatch.setenv("MMCORE_LOAD_PLUGINS", "")
    plugins.reset_registry()
    yield plugins.get_registry()
    plugins.reset_registry()


def test_a_registered_command_is_an_mm_subcommand(registry, capsys):
    assert registry.add_plugin(Offers(ECHO), "first").error is None
    assert main(["echo", "hello", "world", "--upper"]) == 0
    assert capsys.readouterr().out == "HELLO WORLD\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "print the words" in capsys.readouterr().out
    assert main(["echo", "fail"]) == 2  # library errors stay one line
    assert capsys.readouterr().err == "mm: error: echo: nothing to say\n"


def test_a_clashing_command_marks_the_later_plugin_broken(registry, capsys):
    other = Command(name="echo", help="another echo", configure=configure_echo, run=lambda args: print("other"))
    registry.add_plugin(Offers(ECHO), "first")
    second = registry.add_plugin(Offers(other), "second")
    assert second.error == "hook register_commands failed: PluginError: command 'echo' is already registered by plugin 'first'"
    assert registry.command("echo") is ECHO
    assert main(["echo", "still", "here"]) == 0
    assert capsys.readouterr().out == "still here\n"


def test_the_same_command_object_may_come_from_two_plugins(registry, capsys):
    assert registry.add_plugin(Offers(ECHO), "text").error is None
    assert registry.add_plugin(Offers(ECHO), "protein").error is None
    assert registry.commands() == [ECHO] and registry.owner[("commands", "echo")] == "text"
    assert main(["plugins"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["text"]["commands"] == listed["protein"]["commands"] == ["echo"]
    assert main(["echo", "shared"]) == 0
    assert capsys.readouterr().out == "shared\n"


def test_a_core_command_name_is_skipped_with_a_warning(registry, capsys):
    train = Command(name="train", help="not the real one", configure=lambda p: None, run=lambda args: print("hijacked"))
    registry.add_plugin(Offers(train), "greedy")
    assert main(["plugins"]) == 0
    captured = capsys.readouterr()
    assert "mm: warning: plugin 'greedy' registers command 'train', a core command; skipped" in captured.err
    assert json.loads(captured.out)[0]["commands"] == ["train"]


@pytest.mark.parametrize(
    "command, error",
    [
        ("echo", "register_commands takes mmcore.Command objects, got str"),
        (Command(name="Echo!", help="", configure=configure_echo, run=run_echo), "command name 'Echo!' is not valid"),
        (Command(name="echo", help="", configure=lambda p: p.add_argument("-h"), run=run_echo), "conflicting option string: -h"),
    ],
)
def test_a_bad_command_marks_its_plugin_broken_not_mm(registry, capsys, command, error):
    info = registry.add_plugin(Offers(command), "bad")
    assert info.error.startswith("hook register_commands failed") and error in info.error
    assert registry.commands() == []
    assert main(["plugins"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "broken"


def test_text_protein_and_tabular_own_their_commands(toy_registry):
    pytest.importorskip("mm_text")
    pytest.importorskip("mm_protein")
    pytest.importorskip("mm_tabular")
    from mm_tabular.commands import IMPUTE_COMMAND

    from mmcore.discrete import FILL_COMMAND

    assert toy_registry.command("fill") is FILL_COMMAND and toy_registry.command("impute") is IMPUTE_COMMAND
    summaries = {p.name: p.summary() for p in toy_registry.plugins.values()}
    assert summaries["text"]["commands"] == ["fill"] and summaries["protein"]["commands"] == ["fill", "score"]
    assert summaries["tabular"]["commands"] == ["impute"]
    assert summaries["toy"]["commands"] == []
