"""What a user meets at the command line: the model positional everywhere, a misspelled model
answered with the known ones, no traceback when the reader of a pipe goes away."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from pipeline.cli import _check_suggest, build_parser, main
from tests.conftest import REPO


def _suggest_args(*argv: str):
    parser = build_parser()
    args = parser.parse_args(["suggest-suite", *argv])
    _check_suggest(parser, args)
    return args


def test_suggest_suite_takes_the_model_positionally_like_every_command(capsys):
    assert _suggest_args("credit_default", "--days", "7").model == "credit_default"
    assert _suggest_args("--model", "credit_default").model == "credit_default"  # the earlier spelling still works
    with pytest.raises(SystemExit) as exit_info:
        _suggest_args("--days", "7")
    assert exit_info.value.code == 2 and "suggest-suite credit_default" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _suggest_args("credit_default", "--model", "claim_cost")
    assert "two models given" in capsys.readouterr().err


def test_a_misspelled_model_names_the_known_ones_and_the_closest(settings, tmp_path, capsys):
    config = tmp_path / "config"
    config.mkdir()
    (config / "credit_default.yaml").write_text((REPO / "config" / "credit_default.yaml").read_text())
    (config / "broken.yaml").write_text("name: broken\ntask: [not, a, task]\n")
    settings = replace(settings, config_dir=config)

    assert main(["status", "credit_defualt"], settings) == 2
    err = capsys.readouterr().err
    assert "no model named 'credit_defualt'" in err and "did you mean 'credit_default'?" in err
    assert "Known models: credit_default" in err
    assert "Unreadable specs: broken.yaml" in err, "a broken spec is named, and does not hide the others"

    assert main(["status", "zzz"], settings) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`python -m pipeline ... | head` with the reader gone before the output: exit 0, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DRIFTLINE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "generate", "--out", str(tmp_path / "lake"),
                             "--start", "2026-01-01", "--days", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdout.close()  # the reader goes away before the command prints its summary
    _, err = proc.communicate(timeout=300)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-2000:]
    assert proc.returncode == 0


def test_a_model_defined_twice_is_refused_naming_both_files(settings, tmp_path, capsys):
    config = tmp_path / "config"
    config.mkdir()
    for stem in ("a", "b"):
        (config / f"{stem}.yaml").write_text((REPO / "config" / "credit_default.yaml").read_text())
    assert main(["status", "credit_default"], replace(settings, config_dir=config)) == 2
    err = capsys.readouterr().err
    assert "defined by more than one spec: a.yaml, b.yaml" in err
