import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ktrdr_cli.app import COMMANDS, app, load_command

runner = CliRunner()


def test_version_lists_every_installed_distribution():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["ktrdr-core", "ktrdr-api", "ktrdr-worker", "ktrdr-cli"]


def test_short_help_flag():
    result = runner.invoke(app, ["-h"])
    assert result.exit_code == 0
    assert "neuro-fuzzy" in result.stdout


def test_health_without_backend_says_how_to_start_one():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["health"], env={"KTRDR_API_URL": f"http://127.0.0.1:{port}"})
    assert result.exit_code == 1
    assert "is the backend running? try `ktrdr local up`" in result.stderr


def test_root_help_lists_every_command_with_its_own_summary():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = re.findall(r"^  (\w+) ", result.stdout.split("Commands:")[1], re.MULTILINE)
    assert listed == list(COMMANDS)
    for name, (_, _, summary) in COMMANDS.items():
        command = load_command(name)
        # The root help shows the stored one-liner; it must be the command's own first line.
        assert " ".join(command.help.split("\n\n")[0].split()) == summary, name
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and f"Usage: ktrdr {name}" in sub.stdout, name


def test_root_help_imports_no_command_module_and_no_heavy_library():
    probe = (
        "import sys\nfrom ktrdr_cli.app import app\n"
        "try:\n    app(['--help'], prog_name='ktrdr')\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "Usage: ktrdr" in result.stdout
    loaded = set(result.stderr.split())
    assert {"ktrdr_cli.app", "typer"} <= loaded
    heavy = {"pydantic", "rich", "httpx", "yaml", "ktrdr_cli.commands", "ktrdr_core.client"}
    assert not heavy & loaded, heavy & loaded


def test_a_mistyped_command_gets_a_suggestion():
    result = runner.invoke(app, ["modles"])
    assert result.exit_code == 2
    assert "No such command 'modles'. Did you mean 'models'?" in result.stderr


def test_shell_completion_is_offered_and_completes_commands():
    help_text = runner.invoke(app, ["--help"]).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    ktrdr = str(Path(sys.executable).parent / "ktrdr")
    env = dict(os.environ, _KTRDR_COMPLETE="complete_bash", COMP_WORDS="ktrdr models d",
               COMP_CWORD="2")  # fmt: skip
    completed = subprocess.run([ktrdr], env=env, capture_output=True, text=True)
    assert completed.stdout.split() == ["download", "delete"]
