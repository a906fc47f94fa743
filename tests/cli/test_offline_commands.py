"""Commands that work without a backend: the catalogs and strategy files."""

import json

from typer.testing import CliRunner

from ktrdr_cli.app import app
from ktrdr_core.examples import list_examples

runner = CliRunner()


def test_indicator_list_and_show():
    listing = runner.invoke(app, ["indicators", "list"])
    assert listing.exit_code == 0
    assert len(listing.stdout.splitlines()) >= 30
    shown = runner.invoke(app, ["indicators", "show", "stoch"])
    assert shown.exit_code == 0
    assert "outputs: k, d" in shown.stdout
    assert "k_period: int, default" in shown.stdout


def test_unknown_indicator_suggests_a_name():
    result = runner.invoke(app, ["indicators", "show", "rsj"])
    assert result.exit_code == 2
    assert "rsi" in result.stderr


def test_every_example_inits_and_validates(tmp_path):
    for example in list_examples():
        target = tmp_path / f"{example}.yaml"
        result = runner.invoke(app, ["strategies", "init", str(target), "--example", example])
        assert result.exit_code == 0, result.stderr
    files = sorted(str(p) for p in tmp_path.glob("*.yaml"))
    result = runner.invoke(app, ["strategies", "validate", *files])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(": ok") == len(files)


def test_init_refuses_to_overwrite(tmp_path):
    target = tmp_path / "s.yaml"
    target.write_text("mine")
    result = runner.invoke(app, ["strategies", "init", str(target)])
    assert result.exit_code == 1
    assert target.read_text() == "mine"


def test_validate_reports_every_problem_with_file_line_and_path(tmp_path):
    target = tmp_path / "s.yaml"
    runner.invoke(app, ["strategies", "init", str(target), "--example", "rsi_zones"])
    text = target.read_text()
    broken = text.replace("period: 14", "period: 14, colour: red", 1).replace(
        "\nname:", "\nnmae: typo\nname:", 1
    )
    target.write_text(broken)
    result = runner.invoke(app, ["strategies", "validate", str(target)])
    assert result.exit_code == 1
    assert "colour" in result.stderr
    assert "nmae" in result.stderr
    assert f"{target}:" in result.stderr
    assert "2 problem(s)" in result.stderr


def test_show_lists_the_ordered_features(tmp_path):
    target = tmp_path / "s.yaml"
    runner.invoke(app, ["strategies", "init", str(target), "--example", "rsi_zones"])
    result = runner.invoke(app, ["strategies", "show", str(target)])
    assert result.exit_code == 0
    assert "hash      " in result.stdout
    assert "  0  1d_rsi_zone_oversold" in result.stdout


def test_schema_is_json_naming_every_section():
    result = runner.invoke(app, ["strategies", "schema"])
    schema = json.loads(result.stdout)
    for section in ("data", "indicators", "fuzzy_sets", "inputs", "model", "labels"):
        assert section in schema["properties"]
