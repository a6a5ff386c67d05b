"""ACDC and ROC on small hand-built graphs whose every decision is computed by hand.

The planted circuits of test_interp_circuits.py give edge effects that are exactly zero or large, so any pruning loop
and any ROC code score 1 there. Here edge effects are small and overlap (removing one edge changes what removing the
next one costs), rankings are imperfect, and the kept sets, distances, forward-pass counts and AUCs are exact. The
batched (speculative) edge tests are compared with a straightforward sequential reference written from the paper's
definition, with its own masked forward pass.
"""
import math

import numpy as np
import pytest
import torch

from rlinterp.interp.acdc import acdc, acdc_sweep, roc_auc, roc_points
from rlinterp.interp.graph import mlp_graph
from rlinterp.interp.patching import mse_metric
from rlinterp.models.planted import LinearReadout, HandMLP




def _load64(m: HandMLP, *ts) -> None:
    """HandMLP's weights in float64 (``_load`` goes through float32 parameters)."""
    m._load(*ts, "cpu")
    m.double()
    with torch.no_grad():
        for p, t in zip([m.mlp[0].linear.weight, m.mlp[0].linear.bias, m.mlp[1].linear.weight, m.mlp[1].linear.bias,
                         m.head.weight, m.head.bias], ts):
            p.copy_(t)


class TwoLayer(HandMLP):
    """in (2) -> h0 (2, ReLU) -> h1 (1, ReLU) -> out (1); hand-set weights given as nested lists."""

    def __init__(self, W0, W1, Wh):
        super().__init__()
        W0, W1, Wh = (torch.tensor(w, dtype=torch.float64) for w in (W0, W1, Wh))
        _load64(self, W0, torch.zeros(len(W0)), W1, torch.zeros(len(W1)), Wh, torch.zeros(1))


# y = .30 x0 − .20 x1 + .25 x2 + .05 x3 + 0 x4; clean x = 0, corrupted x = 1, so removing the set R of edges gives
# d(R) = (Σ_{i∈R} w_i)² (one example, one output). in.0 and in.1 partly cancel: after in.0 is removed, removing in.1
# *lowers* the distance.
W = [0.30, -0.20, 0.25, 0.05, 0.0]
CLEAN, CORRUPT = torch.zeros(1, 5, dtype=torch.float64), torch.ones(1, 5, dtype=torch.float64)
# reference circuit: in.0, in.2, in.3 (in.1 is a distractor whose effect overlaps with in.0's; in.4 does nothing)
TRUTH = torch.tensor([True, False, True, True, False])
# τ -> (kept inputs, final distance), every test done by hand:
#  τ=.1  : in.0 .09 (remove, d=.09); in.1 (.3−.2)²=.01 (remove, d=.01); in.2 .35²=.1225, +.1125 (keep);
#          in.3 .15²=.0225, +.0125 (remove); in.4 +0 (remove)
#  τ=.01 : in.0 .09 keep; in.1 .04 keep; in.2 .0625 keep; in.3 .0025 (remove); in.4 +0 (remove)
#  τ=.001: in.0, in.1, in.2 keep; in.3 .0025 keep; in.4 +0 (remove)
#  τ=0   : nothing lowers the distance below its current value: every edge kept (0 < 0 is false)
HAND = {0.1: ({2}, 0.0225), 0.01: ({0, 1, 2}, 0.0025), 0.001: ({0, 1, 2, 3}, 0.0), 0.0: ({0, 1, 2, 3, 4}, 0.0)}


@pytest.fixture(scope="module")
def readout():
    m = LinearReadout(W)
    with torch.no_grad():
        y = m(CLEAN)
    return m, m.graph(), mse_metric(y)


@pytest.mark.parametrize("tau", list(HAND))
@pytest.mark.parametrize("max_batch", [1, 2, 64])
def test_acdc_hand_computed_overlapping_effects(readout, tau, max_batch):
    m, g, dist = readout
    r = acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=tau, progress=False, max_batch=max_batch)
    kept, d = HAND[tau]
    assert set(r.circuit.edges) == {f"in.{i}->out.0" for i in kept}
    assert r.circuit.keep.tolist() == [i in kept for i in range(5)]
    assert r.metric == pytest.approx(d, abs=1e-12)
    assert r.threshold == tau and r.circuit.meta == {"threshold": tau}
    assert r.n_forward == 6  # the unpruned graph + one test per edge, however the tests are batched
    if max_batch == 1:
        assert r.n_model_calls == 6


def test_acdc_batched_tests_share_forward_passes(readout):
    """Speculation: the next decision is predicted to repeat the last one; a misprediction ends the batch."""
    m, g, dist = readout
    calls = {tau: acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=tau, progress=False).n_model_calls
             for tau in HAND}
    # one pass on the unpruned graph, then batches of 5, 2, 4, 8... candidates cut at the first misprediction (|):
    # τ=.1 : [R R K|] [R|] [R]            τ=.01 : [K|] [K K] [R|] [R]
    # τ=.001: [K|] [K K] [K R]            τ=0   : [K|] [K K] [K K]
    assert calls == {0.1: 4, 0.01: 5, 0.001: 4, 0.0: 4}


def test_acdc_sweep_rates_and_auc_hand_computed(readout):
    m, g, dist = readout
    rows = acdc_sweep(m, g, CLEAN, CORRUPT, distance=dist, thresholds=[0.1, 0.01, 0.001, 0], truth=TRUTH,
                      progress=False)
    # kept {2}: tp 1 of 3 true, fp 0 of 2 false; {0,1,2}: 2/3, 1/2; {0,1,2,3}: 1, 1/2; everything: 1, 1
    got = [(r["threshold"], r["n_edges"], r["n_forward"], r["tpr"], r["fpr"]) for r in rows]
    assert got == [(0.1, 1, 6, 1 / 3, 0.0), (0.01, 3, 6, 2 / 3, 0.5), (0.001, 4, 6, 1.0, 0.5), (0.0, 5, 6, 1.0, 1.0)]
    assert [r["metric"] for r in rows] == pytest.approx([0.0225, 0.0025, 0.0, 0.0], abs=1e-12)
    assert isinstance(rows[-1]["threshold"], float)
    # curve (0,0) (0,1/3) (.5,2/3) (.5,1) (1,1): trapezoids 0 + .5·(1/3+2/3)/2 + 0 + .5·1 = .75
    assert roc_auc(sweep=rows) == pytest.approx(0.75, abs=1e-12)
    no_truth = acdc_sweep(m, g, CLEAN, CORRUPT, distance=dist, thresholds=[0.01], progress=False)
    assert set(no_truth[0]) == {"threshold", "n_edges", "n_forward", "metric"}


def test_acdc_prunes_disconnected_components_without_a_test():
    # h0.0 = x0 + x1, h0.1 = x1 (+ 0·x0), h1.0 = h0.0 + .05 h0.1, y = h1.0; clean 0, corrupted 1
    m = TwoLayer([[1.0, 1.0], [0.0, 1.0]], [[1.0, 0.05]], [[1.0]])
    x, xc = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    g = m.graph()
    with torch.no_grad():
        dist = mse_metric(m(x))
    r = acdc(m, g, x, xc, distance=dist, threshold=0.01, progress=False)
    # out.0: h1.0->out.0 costs 2.05² (keep). h1.0: h0.0->h1.0 costs 4 (keep), h0.1->h1.0 .0025 (remove, d=.0025).
    # h0.0 (alive): in.0 and in.1 each cost 1.05² (keep). h0.1: no outgoing edge left -> both inputs removed untested.
    assert set(r.circuit.edges) == {"h1.0->out.0", "h0.0->h1.0", "in.0->h0.0", "in.1->h0.0"}
    assert r.metric == pytest.approx(0.0025, abs=1e-12)
    assert r.n_forward == 1 + 1 + 2 + 2  # in.0->h0.1 and in.1->h0.1 are never tested


# ---- the batched implementation against a straightforward sequential reference ----------------------------------
def _reference_acdc(m: HandMLP, x, xc, tau, mode="resample"):
    """ACDC as published, one masked forward pass per edge test; the masked pass is written out by hand:
    pre_j = b_j + Σ_i W_ji (m_ij a_i + (1 − m_ij) a'_i), a' the ablated (corrupted or mean) activation."""
    lins = [m.mlp[0].linear, m.mlp[1].linear, m.head]
    Ws = [lin.weight.detach() for lin in lins]
    bs = [lin.bias.detach() for lin in lins]
    names = ["in", "h0", "h1", "out"]

    def acts(inp, masks=None, patch=None):
        a, out = inp, [inp]
        for k, (Wk, bk) in enumerate(zip(Ws, bs)):
            if masks is None:
                pre = a @ Wk.T + bk
            else:
                mk = masks[k]  # [n_in, n_out]
                pre = bk + torch.einsum("bi,ji,ij->bj", a, Wk, mk) + torch.einsum("bi,ji,ij->bj", patch[k], Wk, 1 - mk)
            a = torch.relu(pre) if k < 2 else pre
            out.append(a)
        return out

    y = acts(x)[-1]
    p = acts(xc)[:3]
    if mode == "mean":
        p = [t.mean(0, keepdim=True).expand_as(t) for t in acts(x)[:3]]
    dist = lambda out: float(((out - y) ** 2).sum(-1).mean())  # noqa: E731
    masks = [torch.ones(W_.shape[1], W_.shape[0], dtype=torch.float64) for W_ in Ws]
    cur, n_fwd = dist(acts(x, masks, p)[-1]), 1
    # destinations from the output back; sources latest layer first, by name
    for k in (2, 1, 0):
        for j in sorted(range(Ws[k].shape[0]), key=lambda j: f"{names[k + 1]}.{j}"):
            alive = k == 2 or bool((masks[k + 1][j] > 0).any())
            for i in sorted(range(Ws[k].shape[1]), key=lambda i: f"{names[k]}.{i}"):
                masks[k][i, j] = 0.0
                if not alive:
                    continue
                new = dist(acts(x, masks, p)[-1])
                n_fwd += 1
                if new - cur < tau:
                    cur = new
                else:
                    masks[k][i, j] = 1.0
    kept = {f"{names[k]}.{i}->{names[k + 1]}.{j}" for k in range(3) for i, j in (masks[k] > 0).nonzero().tolist()}
    return kept, cur, n_fwd


class RandomMLP(HandMLP):
    def __init__(self, d_in=5, width=(6, 5), seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w0, w1 = width
        shapes = [(w0, d_in), (w0,), (w1, w0), (w1,), (1, w1), (1,)]
        ts = [torch.randn(*s, generator=g, dtype=torch.float64) * 0.5 for s in shapes]
        _load64(self, *ts)


@pytest.mark.parametrize("mode", ["resample", "mean"])
@pytest.mark.parametrize("tau", [1e-4, 3e-4, 1e-3])
def test_acdc_matches_sequential_reference(tau, mode):
    m = RandomMLP(seed=3)
    x, xc = m.sample(16, seed=1).double(), m.sample(16, seed=2).double()
    g = m.graph()
    kept, d_ref, n_ref = _reference_acdc(m, x, xc, tau, mode)
    with torch.no_grad():
        dist = mse_metric(m(x))
    for max_batch in (1, 3, 64):
        r = acdc(m, g, x, xc, distance=dist, threshold=tau, mode=mode, progress=False, max_batch=max_batch)
        assert set(r.circuit.edges) == kept
        assert r.metric == pytest.approx(d_ref, rel=1e-9, abs=1e-12)
        assert r.n_forward == n_ref
        assert (r.n_model_calls == n_ref) if max_batch == 1 else (r.n_model_calls < n_ref)
    assert 0 < len(kept) < len(g)  # the case is not trivial: some edges kept, some removed


def test_acdc_max_batch_checked(readout):
    m, g, dist = readout
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_batch must be an int >= 1"):
            acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0.1, max_batch=bad)
    with pytest.raises(TypeError, match="threshold must be a finite number"):
        acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold must be a finite number"):
        acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=True)
    with pytest.raises(ValueError, match=r"^acdc: threshold must be >= 0, got -0.5$"):
        acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=-0.5)
    with pytest.raises(ValueError, match="clean_tol"):
        acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0.1, clean_tol=True)
    r = acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0, clean_tol=0)  # 0 and int thresholds are fine
    assert r.circuit.keep.all()


def test_acdc_distance_checks(readout):
    m, g, dist = readout
    with pytest.raises(ValueError, match=r"is nan on the clean model; it must be a finite number"):
        acdc(m, g, CLEAN, CORRUPT, distance=lambda out: dist(out) * float("nan"), threshold=0.1, progress=False)
    # within clean_tol of 0 on the clean model is accepted; just outside is not
    assert acdc(m, g, CLEAN, CORRUPT, distance=lambda out: dist(out) + 1e-7, threshold=0.1, progress=False)
    with pytest.raises(ValueError, match=r"but it is 2e-06 on the clean model \(tolerance clean_tol=1e-06\)"):
        acdc(m, g, CLEAN, CORRUPT, distance=lambda out: dist(out) + 2e-6, threshold=0.1, progress=False)
    with pytest.raises(ValueError, match=r"^acdc: `distance` must be a distance.*distance=lambda out: "
                                         r"\(metric\(out\) - metric_clean\).abs\(\)$"):
        acdc(m, g, CLEAN, CORRUPT, distance=lambda out: dist(out) - 1e-5, threshold=0.1, progress=False)
    # a pruned graph's distance may dip to −clean_tol, not below; the error names the edge being tested
    shift = lambda out: dist(out) - 0.5 * float(dist(out) > 0.05)  # noqa: E731
    with pytest.raises(ValueError, match=r"it is -0.41 with in.0->out.0 and earlier edges removed"):
        acdc(m, g, CLEAN, CORRUPT, distance=shift, threshold=0.1, progress=False)
    r = acdc(m, g, CLEAN, CORRUPT, distance=lambda out: dist(out) - 1e-7, threshold=0.1, progress=False,
             clean_tol=1e-6)
    assert r.metric == pytest.approx(0.0225 - 1e-7, abs=1e-12)


def test_acdc_progress_bar_counts_every_edge(readout, capsys):
    m, g, dist = readout
    acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0.1, progress=True)
    err = capsys.readouterr().err
    assert "ACDC τ=0.1" in err and "5/5" in err


# ---- ROC ------------------------------------------------------------------------------------------------------------
def test_roc_points_and_auc_imperfect_ranking_with_ties():
    # |scores| ranks: 0.9 (T), −0.8 (F), 0.7 (T), 0.7 (F, tied with a true edge), 0.6 (T), 0.5 (F)
    scores = torch.tensor([0.9, -0.8, 0.7, 0.7, 0.5, 0.6])
    truth = torch.tensor([True, False, True, False, False, True])
    fpr, tpr = roc_points(scores, truth)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1, 1])
    # pairs (true, false) ordered correctly: .9 beats 3; .7 beats .5 and ties .7 (½); .6 beats .5: 5.5 / 9
    assert roc_auc(scores, truth) == pytest.approx(5.5 / 9, abs=1e-12)
    assert roc_auc(-scores, truth) == pytest.approx(5.5 / 9, abs=1e-12)  # ranked by |score|
    # the Mann-Whitney statistic agrees
    s, y = scores.abs().numpy(), truth.numpy()
    mw = np.mean([(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]])
    assert roc_auc(scores, truth) == pytest.approx(mw)


def test_roc_auc_unequal_class_sizes_and_edge_cases():
    scores = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    truth = torch.tensor([False, True, True, False, False])  # one false edge ranked first
    assert roc_auc(scores, truth) == pytest.approx(4 / 6)
    fpr, tpr = roc_points(scores, truth)
    np.testing.assert_allclose(fpr, [0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0, 0.5, 1, 1, 1, 1])
    assert roc_auc(torch.ones(4), torch.tensor([True, False, True, False])) == 0.5  # all tied: chance
    with pytest.raises(ValueError, match=r"^roc_auc: pass \(scores, truth\) or sweep=\[...\]$"):
        roc_auc(scores)
    with pytest.raises(ValueError, match=r"^roc_auc: pass \(scores, truth\) or sweep=\[...\]$"):
        roc_auc(truth=truth)


def test_roc_auc_sweep_monotone_envelope():
    # two points at fpr .5: the envelope keeps the higher tpr; points need not be given in order
    rows = [{"fpr": 0.5, "tpr": 0.25}, {"fpr": 0.25, "tpr": 0.5}, {"fpr": 0.5, "tpr": 0.75}]
    # (0,0) (.25,.5) (.5,.25→.5) (.5,.75) (1,1): .25·(0+.5)/2 + .25·(.5+.5)/2 + 0 + .5·(.75+1)/2 = .625
    assert roc_auc(sweep=rows) == pytest.approx(0.625)
    # a point below an earlier one does not pull the curve down
    assert roc_auc(sweep=[{"fpr": 0.2, "tpr": 0.8}, {"fpr": 0.6, "tpr": 0.4}]) == pytest.approx(
        0.2 * 0.4 + 0.4 * 0.8 + 0.4 * 0.9)
    assert roc_auc(sweep=[]) == 0.5
    assert math.isfinite(roc_auc(sweep=[{"fpr": 0.0, "tpr": 1.0}])) and roc_auc(sweep=[{"fpr": 0.0, "tpr": 1.0}]) == 1.0


# ---- arguments, batching bounds, degenerate graphs ----------------------------------------------------------------
def test_acdc_sweep_forwards_its_arguments(readout, capsys):
    m, g, dist = readout
    shifted = lambda out: dist(out) + 2e-6  # noqa: E731
    with pytest.raises(ValueError, match=r"clean_tol=1e-06"):  # the default tolerance is acdc's
        acdc_sweep(m, g, CLEAN, CORRUPT, distance=shifted, thresholds=[0.1], progress=False)
    rows = acdc_sweep(m, g, CLEAN, CORRUPT, distance=shifted, thresholds=[0.1], progress=False, clean_tol=1e-5)
    assert rows[0]["n_edges"] == 1
    with pytest.raises(ValueError, match="max_batch"):
        acdc_sweep(m, g, CLEAN, CORRUPT, distance=dist, thresholds=[0.1], progress=False, max_batch=0)
    capsys.readouterr()
    acdc_sweep(m, g, CLEAN, CORRUPT, distance=dist, thresholds=[0.1, 0.01])  # progress by default: the sweep's bar
    err = capsys.readouterr().err
    assert "ACDC sweep" in err and "2/2" in err and "ACDC τ" not in err
    acdc_sweep(m, g, CLEAN, CORRUPT, distance=dist, thresholds=[0.1], progress=False)
    assert capsys.readouterr().err == ""
    # mode reaches acdc: mean ablation of a random MLP
    mm = RandomMLP(seed=3)
    x, xc = mm.sample(16, seed=1).double(), mm.sample(16, seed=2).double()
    with torch.no_grad():
        d2 = mse_metric(mm(x))
    row = acdc_sweep(mm, mm.graph(), x, xc, distance=d2, thresholds=[3e-4], mode="mean", progress=False)[0]
    ref = acdc(mm, mm.graph(), x, xc, distance=d2, threshold=3e-4, mode="mean", progress=False)
    res = acdc(mm, mm.graph(), x, xc, distance=d2, threshold=3e-4, progress=False)
    assert (row["n_edges"], row["metric"]) == (int(ref.circuit.keep.sum()), ref.metric) != (
        int(res.circuit.keep.sum()), res.metric)


def test_acdc_progress_is_on_by_default(readout, capsys):
    m, g, dist = readout
    acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0.1)
    assert "ACDC τ=0.1" in capsys.readouterr().err
    acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0.1, progress=False)
    assert capsys.readouterr().err == ""


def test_acdc_batch_widths_and_row_cap():
    # 25 edges that do nothing: every test removes its edge; batches of 8, 16, then the last edge
    zero = LinearReadout([0.0] * 25)
    x, xc = torch.zeros(1, 25, dtype=torch.float64), torch.ones(1, 25, dtype=torch.float64)
    d = mse_metric(zero(x).detach())
    r = acdc(zero, zero.graph(), x, xc, distance=d, threshold=0.1, progress=False)
    assert (r.n_forward, r.n_model_calls, int(r.circuit.keep.sum())) == (26, 4, 0)
    # sources are tested in name order (in.0, in.1, in.10, ..., in.19, in.2, ...); in.0 and in.1 are kept:
    # [K|] [K R] (the width doubles after a correctly predicted batch), then 4, 8 and 10 tests
    two = LinearReadout([1.0, 1.0] + [0.0] * 23)
    r = acdc(two, two.graph(), x, xc, distance=mse_metric(two(x).detach()), threshold=0.1, progress=False)
    assert (r.n_forward, r.n_model_calls, r.circuit.edges) == (26, 6, ["in.0->out.0", "in.1->out.0"])
    r2 = acdc(two, two.graph(), x, xc, distance=mse_metric(two(x).detach()), threshold=0.1, progress=False,
              max_batch=2)
    assert (r2.n_forward, r2.n_model_calls, r2.circuit.edges) == (26, 1 + 1 + 1 + 11, r.circuit.edges)
    # a misprediction inside a batch: the next width is twice the run that was predicted correctly
    # [K|] [K K] [K K R|] (run of 3 -> width 6) [R R R]; with the width not doubled: [R R] [R]
    five = LinearReadout([1.0] * 5 + [0.0] * 4)
    x9, xc9 = torch.zeros(1, 9, dtype=torch.float64), torch.ones(1, 9, dtype=torch.float64)
    r = acdc(five, five.graph(), x9, xc9, distance=mse_metric(five(x9).detach()), threshold=0.1, progress=False)
    assert (r.n_forward, r.n_model_calls, len(r.circuit.edges)) == (10, 5, 5)
    # at most 8192 stacked rows: 200 examples -> at most 40 tests per pass (8, 16, 32 -> 40, ...)
    zero100 = LinearReadout([0.0] * 100)
    x, xc = torch.zeros(200, 100, dtype=torch.float64), torch.ones(200, 100, dtype=torch.float64)
    r = acdc(zero100, zero100.graph(), x, xc, distance=mse_metric(zero100(x).detach()), threshold=0.1, progress=False)
    assert (r.n_forward, r.n_model_calls) == (101, 1 + 5)  # 8 + 16 + 32 + 40 + 4
    big = torch.zeros(8193, 25, dtype=torch.float64)  # more than 8192 examples: one test per pass
    r = acdc(zero, zero.graph(), big, big + 1, distance=mse_metric(zero(big).detach()), threshold=0.1, progress=False)
    assert r.n_model_calls == r.n_forward == 26


class TupleReadout(LinearReadout):
    """Takes its input as a one-element tuple: not a batched tensor, so its edge tests run one per pass."""

    def forward(self, inp):
        return super().forward(inp[0])


class SummedReadout(LinearReadout):
    """Sums its output over the batch: batched edge tests cannot be split back into candidates."""

    def forward(self, x):
        return super().forward(x).sum(0, keepdim=True)


def test_acdc_inputs_that_cannot_be_stacked():
    m = TupleReadout(W)
    with torch.no_grad():
        y = m((CLEAN,))
    r = acdc(m, m.graph(), (CLEAN,), (CORRUPT,), distance=mse_metric(y), threshold=0.1, progress=False)
    assert set(r.circuit.edges) == {"in.2->out.0"} and r.n_model_calls == r.n_forward == 6
    s = SummedReadout(W)
    x, xc = CLEAN.repeat(2, 1), CORRUPT.repeat(2, 1)
    with pytest.raises(ValueError, match=r"^acdc: batched edge tests need a model output stacked along the batch "
                                         r"axis \(10 rows\), got Tensor; pass max_batch=1$"):
        acdc(s, s.graph(), x, xc, distance=mse_metric(s(x).detach()), threshold=0.1, progress=False)
    r = acdc(s, s.graph(), x, xc, distance=mse_metric(s(x).detach()), threshold=0.1, progress=False, max_batch=1)
    assert r.n_forward == 6


def test_acdc_components_without_inputs_or_outputs():
    # h0.1 has neither inputs nor outputs once zero weights are left out of the graph
    m = TwoLayer([[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0]], [[1.0]])
    g = mlp_graph([("hook_obs", m.mlp[0].linear, "mlp.0.hook_pre"), ("mlp.0.hook_post", m.mlp[1].linear,
                   "mlp.1.hook_pre"), ("mlp.1.hook_post", m.head, "hook_out")], drop_zero=True, model=m)
    x, xc = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    r = acdc(m, g, x, xc, distance=mse_metric(m(x).detach()), threshold=0.01, progress=False)
    assert set(r.circuit.edges) == {"in.0->h0.0", "in.1->h0.0", "h0.0->h1.0", "h1.0->out.0"} and r.n_forward == 5


def test_acdc_progress_counts_untested_edges_once(capsys):
    m = TwoLayer([[1.0, 1.0], [0.0, 1.0]], [[1.0, 0.05]], [[1.0]])
    x, xc = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    acdc(m, m.graph(), x, xc, distance=mse_metric(m(x).detach()), threshold=0.01)
    err = capsys.readouterr().err
    assert "7/7" in err and "9/7" not in err


def test_acdc_argument_errors_in_full(readout):
    m, g, dist = readout
    with pytest.raises(TypeError, match=r"^acdc: distance must be a callable output -> scalar, got float$"):
        acdc(m, g, CLEAN, CORRUPT, distance=0.0, threshold=0.1)
    for bad in (-1, "0.1", float("nan")):
        with pytest.raises(ValueError, match=r"^acdc: clean_tol must be a number >= 0, got"):
            acdc(m, g, CLEAN, CORRUPT, distance=dist, threshold=0.1, clean_tol=bad)
    with pytest.raises(ValueError) as err:
        acdc(m, g, CLEAN, CORRUPT, distance=lambda out: dist(out) + 1.0, threshold=0.1, progress=False)
    assert str(err.value) == (
        "acdc: `distance` must be a distance to the clean model's output (0 on the clean model, never negative), "
        "but it is 1 on the clean model (tolerance clean_tol=1e-06). This looks like a task metric "
        "(higher = better, e.g. a logit difference), which EAP takes; ACDC would minimise it and keep the edges "
        "that destroy the behaviour. Pass a distance such as kl_metric(clean_logits) or mse_metric(clean_out), or "
        "wrap the metric: distance=lambda out: (metric(out) - metric_clean).abs()")


def test_rates_and_roc_with_a_single_positive_or_negative():
    scores = torch.tensor([3.0, 2.0, 1.0])
    one_true = torch.tensor([False, True, False])
    fpr, tpr = roc_points(scores, one_true)
    np.testing.assert_allclose(tpr, [0, 0, 1, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0.5, 0.5, 1, 1])
    one_false = torch.tensor([True, False, True])
    fpr, tpr = roc_points(scores, one_false)
    np.testing.assert_allclose(fpr, [0, 0, 1, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    m = LinearReadout([0.3, 0.0])
    x, xc = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    d = mse_metric(m(x).detach())
    # τ = .01: in.0 (effect .09) kept, in.1 (no effect) removed
    rows = acdc_sweep(m, m.graph(), x, xc, distance=d, thresholds=[0.01], truth=torch.tensor([True, False]),
                      progress=False)
    assert (rows[0]["tpr"], rows[0]["fpr"]) == (1.0, 0.0)
    rows = acdc_sweep(m, m.graph(), x, xc, distance=d, thresholds=[0.01], truth=torch.tensor([False, True]),
                      progress=False)
    assert (rows[0]["tpr"], rows[0]["fpr"]) == (0.0, 1.0)
