"""The command line: every subcommand has --help, bad usage exits 2 with a message on stderr."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kycrisk " + command)


def test_bad_number_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--customers", "-3", "--out", "x"])
    assert exc.value.code == 2
    assert "expected a number > 0" in capsys.readouterr().err


def test_installed_console_script_runs() -> None:
    exe = shutil.which("kycrisk", path=str(Path(sys.executable).parent))
    assert exe, "the kycrisk console script is not installed next to this interpreter"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "generate" in result.stdout and "validate" in result.stdout


def test_missing_data_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(tmp_path / "does-not-exist")])
    assert code == 2
    assert "does-not-exist" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "0", "soon", "inf"])
def test_bad_durations_are_usage_errors(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["demo", "--hours", value], ["bench", "serve", "--seconds", value]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "expected a" in capsys.readouterr().err
