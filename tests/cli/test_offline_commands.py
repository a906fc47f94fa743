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


def test_json_output_of_the_offline_commands(tmp_path):
    listed = json.loads(runner.invoke(app, ["--json", "indicators", "list"]).stdout)
    assert {"rsi", "macd", "atr"} <= {spec["name"] for spec in listed}
    macd = json.loads(runner.invoke(app, ["--json", "indicators", "show", "macd"]).stdout)
    assert macd["outputs"] == ["macd", "signal", "hist"]
    assert [p["name"] for p in macd["params"]] == ["fast", "slow", "signal"]

    target = tmp_path / "s.yaml"
    written = json.loads(runner.invoke(app, ["--json", "strategies", "init", str(target)]).stdout)
    assert written == {"path": str(target), "example": "rsi_zones"}
    shown = json.loads(runner.invoke(app, ["--json", "strategies", "show", str(target)]).stdout)
    assert shown["name"] == "rsi_zones" and shown["features"][0] == "1d_rsi_zone_oversold"

    target.write_text(target.read_text().replace("\nname:", "\nnmae: typo\nname:", 1))
    missing = tmp_path / "missing.yaml"
    checked = runner.invoke(app, ["--json", "strategies", "validate", str(target), str(missing)])
    assert checked.exit_code == 1
    results = json.loads(checked.stdout)
    assert [(r["file"], r["ok"]) for r in results] == [(str(target), False), (str(missing), False)]
    assert any("nmae" in issue["path"] + issue["message"] for issue in results[0]["issues"])
    assert results[1]["issues"][0]["message"] == "no such file"

    schema_file = tmp_path / "schema.json"
    saved = runner.invoke(app, ["--json", "strategies", "schema", "-o", str(schema_file)])
    assert json.loads(saved.stdout) == {"path": str(schema_file)}
    assert "properties" in json.loads(schema_file.read_text())
