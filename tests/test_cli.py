"""`rli play`, `rli data verify` and `rli bench` as a user runs them."""
from __future__ import annotations

import subprocess
import sys

from rlinterp import ROOT


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
