import socket

from typer.testing import CliRunner

from ktrdr_cli.app import app

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
