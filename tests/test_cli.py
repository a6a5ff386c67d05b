"""`rli play`, `rli data verify` and `rli bench` as a user runs them."""
from __future__ import annotations

import subprocess
import sys

import pytest

from rlinterp import ROOT
from rlinterp import bench as bench_mod
from rlinterp.cli import main


def rli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlinterp.cli", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_play_coinflip_against_optimal_and_agent():
    proc = rli("play", "coinflip", "--seed", "3", stdin="1\nseven\n2\n")  # then input closes: treated as quitting
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "optimal: coin" in out and "agent: coin" in out  # the shipped DQN plays alongside
    assert "'seven' is not a coin" in out
    assert "final scores: person" in out and "true head probabilities" in out


def test_data_verify():
    proc = rli("data", "verify")
    assert proc.returncode == 0, proc.stderr
    assert "data files verified" in proc.stdout


def test_bench_reports_coinflip_targets():
    proc = rli("bench", "--fast", "coinflip")
    assert proc.returncode == 0, proc.stderr
    assert "% of Bayes-optimal" in proc.stdout and "greedy→optimal gap closed" in proc.stdout
    assert "## ad" not in proc.stdout  # only the requested study
    bad = rli("bench", "nosuchstudy")
    assert bad.returncode == 2 and "unknown study" in bad.stderr


@pytest.mark.parametrize("rows, rc", [
    ([("a", "1.00", "≥ 1", True), ("b", "0.5", "report", None)], 0),
    ([("a", "1.00", "≥ 1", True), ("b", "0.50", "≥ 0.9", False)], 1),  # a NOT MET row
])
def test_bench_exit_code_follows_the_targets(monkeypatch, capsys, rows, rc):
    monkeypatch.setattr(bench_mod, "STUDIES", {"toy": lambda fast: rows})
    assert main(["bench", "toy"]) == rc
    out, err = capsys.readouterr()
    assert ("NOT MET" in out) == (rc == 1)
    assert ("1 target(s) not met or not measurable: toy: b" in err) == (rc == 1)


def test_bench_exits_nonzero_on_bad_data(monkeypatch, capsys):
    from rlinterp.pipeline.manifest import DataError

    def broken(fast):
        raise DataError("data/coinflip/dqn.pt is corrupt (sha256 mismatch)")

    monkeypatch.setattr(bench_mod, "STUDIES", {"toy": broken, "other": lambda fast: [("x", "1", "report", None)]})
    assert main(["bench"]) == 1
    out, err = capsys.readouterr()
    assert "DataError: data/coinflip/dqn.pt is corrupt" in out and "## other" in out  # the others still report
    assert "toy: error" in err
