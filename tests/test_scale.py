

def test_null_rows_flag_refuses_a_bad_value_as_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmkit.cli import main

    result = CliRunner().invoke(main, ["test-local", str(tmp_path), "--null-rows", "0"])
    assert result.exit_code == 2
    assert "use auto, all or a positive number of rows" in result.output
