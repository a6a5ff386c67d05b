"""The toolkit's sharp edges, each reproduced on a planted model whose answer is known by construction."""
import warnings

import pytest
import torch

from rlinterp.models.planted import DenseMLP, OrGateMLP, PlantedMLP, RotatedMLP, planted_transformer
from rlinterp.interp.acdc import acdc, acdc_sweep, roc_auc
from rlinterp.interp.attribution_patching import eap, eap_ig
from rlinterp.interp.graph import ModelFlagWarning, mlp_graph, transformer_graph
from rlinterp.interp.patching import mse_metric, patch_edges, restored_metric
from rlinterp.interp.scrubbing import causal_scrubbing


def _case(m, x, xc):
    g = m.graph()
    with torch.no_grad():
        y, yc = m(x), m(xc)
    return g, restored_metric(y, yc), mse_metric(y), g.labels(m.true_edges())


@pytest.fixture(scope="module")
def cancel():
    m = PlantedMLP(cancel=1.0, seed=0)
    x, xc = m.sample(128, seed=1), m.sample(128, seed=2)
    return (m, x, xc, *_case(m, x, xc))


# ---- ACDC: a distance, not a task metric ---------------------------------------------------------------------------
def test_acdc_refuses_task_metric_on_cancelling_pair(cancel):
    m, x, xc, g, task, dist, _ = cancel
    with pytest.raises(ValueError, match=r"clean_tol=1e-06.*task metric") as err:
        acdc(m, g, x, xc, distance=task, threshold=1e-3, progress=False)
    assert "it is 1 on the clean model" in str(err.value)
    with pytest.raises(ValueError, match="task metric"):
        acdc_sweep(m, g, x, xc, distance=task, thresholds=[1e-3], progress=False)
    # the failure the check prevents: minimising the task metric keeps the pair and destroys the behaviour
    r = acdc(m, g, x, xc, distance=task, threshold=1e-3, progress=False, clean_tol=float("inf"))
    assert set(r.circuit.edges) & m.pair_edges and r.metric < 0
    # the same task metric wrapped as a distance is accepted
    with torch.no_grad():
        t_clean = float(task(m(x)))
    ok = acdc(m, g, x, xc, distance=lambda out: (task(out) - t_clean).abs(), threshold=1e-3, progress=False)
    assert ok.metric >= 0


def test_acdc_distance_is_keyword_only_and_checked(cancel):
    m, x, xc, g, task, dist, _ = cancel
    with pytest.raises(TypeError):
        acdc(m, g, x, xc, dist, 1e-3)  # noqa  -- positional distance is not allowed
    with pytest.raises(ValueError, match="never negative"):  # a "distance" that goes negative when edges are removed
        acdc(m, g, x, xc, distance=lambda out: dist(out) - 1e-3 * (out - m(x).detach()).abs().mean() * 1e6,
             threshold=1e-3, progress=False)
    with pytest.raises(TypeError, match="callable"):
        acdc(m, g, x, xc, distance=0.0, threshold=1e-3)
    with pytest.raises(ValueError, match="clean_tol"):
        acdc(m, g, x, xc, distance=dist, threshold=1e-3, clean_tol=-1)
    r = acdc(m, g, x, xc, distance=dist, threshold=1e-3, progress=False)  # clean-vs-clean distance is exactly 0
    assert r.circuit.keep.sum() > 0


# ---- graph builders -------------------------------------------------------------------------------------------------
def test_graph_builder_typo_names_close_matches():
    m = PlantedMLP()
    layers = [("hook_obs", m.mlp[0].linear, "mlp.0.hook_pre"), ("mlp.0.hook_post", m.mlp[1].linear, "mlp.1.hook_pre"),
              ("mlp.1.hook_post", m.head, "hook_outt")]
    with pytest.raises(ValueError, match=r"no hook point 'hook_outt' \(did you mean 'hook_out'"):
        mlp_graph(layers, model=m)
    g = mlp_graph(layers)  # without the model: checked when first run on one, still with a clear error
    with pytest.raises(ValueError, match="did you mean 'hook_out'"):
        g.cache(m, m.sample(4))
    with pytest.raises(ValueError, match="did you mean 'hook_out'"):
        eap(m, g, m.sample(4), m.sample(4, 1), lambda y: y.sum())
    with pytest.raises(TypeError, match="HookedTransformer"):
        transformer_graph(m)


def test_transformer_graph_warns_for_each_flag_it_switches_on():
    m = planted_transformer()
    with pytest.warns(ModelFlagWarning, match="use_attn_result, use_split_qkv_input") as rec:
        transformer_graph(m)
    assert "use_hook_mlp_in" not in str(rec[0].message)  # attention-only: no MLP flag
    assert m.cfg.use_attn_result and m.cfg.use_split_qkv_input
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelFlagWarning)
        transformer_graph(m)  # flags already on: nothing to say


# ---- failure modes --------------------------------------------------------------------------------------------------
def test_or_gate_branches_score_zero_and_acdc_keeps_one():
    m = OrGateMLP()
    x, xc = m.contrast(64, seed=1)
    g, task, dist, truth = _case(m, x, xc)
    assert torch.equal(m(x), m.target(x)) and torch.equal(m(xc), m.target(xc))
    branch_idx = [g.edge_id[e] for b in m.branches for e in b]
    for s in (eap(m, g, x, xc, task), patch_edges(m, g, x, task, corrupted=xc, progress=False)):
        assert s[branch_idx].abs().max() < 1e-6
        assert abs(float(s[g.edge_id["h1.0->out.0"]])) > 0.9
    kept = set(acdc(m, g, x, xc, distance=dist, threshold=1e-3, progress=False).circuit.edges)
    assert [b <= kept for b in m.branches].count(True) == 1 and not (m.branches[0] & kept and m.branches[1] & kept)
    # both branches together do matter; EAP-IG, which integrates from the corrupted input, sees them
    keep = torch.tensor([e.name not in m.branches[0] | m.branches[1] for e in g.edges])
    with torch.no_grad():
        assert float(task(g.forward(m, x, g.cache(m, xc), g.masks_from(keep)))) < 0.05
    assert eap_ig(m, g, x, xc, task, steps=5)[branch_idx].abs().min() > 0.1


def test_cancelling_pair_ranked_high_and_kept(cancel):
    m, x, xc, g, task, dist, truth = cancel
    assert torch.allclose(m(x), m.target(x))  # the pair has no net effect
    idx = [g.edge_id[e] for e in m.pair_edges]
    for s in (eap(m, g, x, xc, task), patch_edges(m, g, x, task, corrupted=xc, progress=False)):
        a = s.abs()
        top = int((a > a[idx].max()).sum()) + 1
        assert top <= int(truth.sum())  # a pair edge ranks inside the top (number of planted edges)
        assert roc_auc(s, truth) < 1
    r = acdc(m, g, x, xc, distance=dist, threshold=1e-3, progress=False)
    assert m.pair_edges <= set(r.circuit.edges) and m.true_edges() <= set(r.circuit.edges)


def test_scrubbing_omitted_cancelling_pair_scores_about_80_percent(cancel):
    m, *_ = cancel
    g = m.graph()
    pool = m.sample(1024, seed=3)
    loss = lambda out, x: ((out - m.target(x)) ** 2).sum(-1)  # noqa: E731
    without = causal_scrubbing(m, g, m.hypothesis(), pool, loss, n_ref=256, n_boot=200)
    with_pair = causal_scrubbing(m, g, m.hypothesis(pair=True), pool, loss, n_ref=256, n_boot=200)
    print(f"without pair {without.recovered:.3f} {without.ci}; with pair {with_pair.recovered:.3f}")
    assert 0.65 < without.recovered < 0.92 and without.ci[1] < 0.97
    assert with_pair.recovered > 0.99
    with pytest.raises(ValueError, match="cancel > 0"):
        PlantedMLP().hypothesis(pair=True)


@pytest.mark.parametrize("kind", ["dense", "rotated"])
def test_dense_and_low_rank_circuits_score_below_one(kind):
    if kind == "dense":
        m = DenseMLP(seed=1)
    else:
        m = RotatedMLP(seed=0)
        ctrl = RotatedMLP(rotate=False, seed=0)
        x = ctrl.sample(128, 1)
        assert torch.allclose(m(x), ctrl(x), atol=1e-4)  # same function, rotated basis
    x, xc = m.sample(128, seed=1), m.sample(128, seed=2)
    g, task, dist, truth = _case(m, x, xc)
    assert 0 < truth.sum() < len(truth)
    auc_eap = roc_auc(eap(m, g, x, xc, task), truth)
    auc_acdc = roc_auc(sweep=acdc_sweep(m, g, x, xc, distance=dist, thresholds=[0.0, 1e-5, 1e-3, 0.1], truth=truth,
                                        progress=False))
    print(kind, auc_eap, auc_acdc)
    assert 0.5 < auc_eap < 0.999 and 0.5 < auc_acdc < 0.999
    if kind == "rotated":  # the axis-aligned control is recovered exactly
        cx, cxc = ctrl.sample(128, 1), ctrl.sample(128, 2)
        cg, ctask, _, ctruth = _case(ctrl, cx, cxc)
        assert roc_auc(eap(ctrl, cg, cx, cxc, ctask), ctruth) == 1.0
