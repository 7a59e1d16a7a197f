"""Exit codes tell user errors from bugs: a UserError family member ends in one line and exit 2;
anything else (a ValueError from inside a library included) ends in exit 1, one line, and a log
file with the traceback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from backends.errors import BackendError
from profiler import cli
from profiler.errors import UserError
from workloads.errors import WorkloadError

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "open_errors"


@pytest.fixture()
def run_dir(tmp_path):
    return Path(shutil.copytree(FIXTURE, tmp_path / "run"))


@pytest.mark.parametrize("error", [UserError("bad flag"), WorkloadError("bad length"), BackendError("bad endpoint")])
def test_user_errors_exit_2_with_one_line(error, run_dir, monkeypatch, capsys):
    def fail(_):
        raise error

    monkeypatch.setattr("profiler.points.summarize_run", fail)
    assert cli.main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err == f"inferprof: error: {error}\n"


@pytest.mark.parametrize("error", [ValueError("cannot reshape array"), KeyError("ttft_p99_ms"), ZeroDivisionError()])
def test_bugs_exit_1_with_a_pointer_to_the_traceback(error, run_dir, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("INFERPROF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("INFERPROF_DEBUG", raising=False)

    def fail(_):
        raise error

    monkeypatch.setattr("profiler.points.summarize_run", fail)
    assert cli.main(["report", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("inferprof: internal error: ")
    log = Path(re.search(r"traceback: (\S+?);", err).group(1))
    assert log.is_file() and log.parent == tmp_path / "cache" / "logs"
    assert "Traceback (most recent call last)" in log.read_text() and type(error).__name__ in log.read_text()


def test_bad_run_folder_is_a_user_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    assert "not a run folder" in capsys.readouterr().err
