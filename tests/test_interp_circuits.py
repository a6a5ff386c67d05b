"""ACDC, EAP and EAP-IG recover the planted circuits (ROC AUC against the edges planted by construction)."""
import matplotlib
import pytest
import torch

from rlinterp.models.planted import PlantedMLP, marker_task, planted_transformer
from rlinterp.interp.acdc import acdc, acdc_sweep, roc_auc
from rlinterp.interp.attribution_patching import attribution_patching, eap, eap_ig
from rlinterp.interp.circuit_plots import draw_circuit
from rlinterp.interp.graph import transformer_graph
from rlinterp.interp.patching import kl_metric, logit_diff_metric, mse_metric, restored_metric

matplotlib.use("Agg")



def _mlp_case(d_in, width, seed):
    m = PlantedMLP(d_in=d_in, width=width, n_relevant=4, seed=seed)
    x, xc = m.sample(256, seed=10 + seed), m.sample(256, seed=20 + seed)
    with torch.no_grad():
        y, yc = m(x), m(xc)
    g = m.graph()
    return m, g, x, xc, g.labels(m.true_edges()), restored_metric(y, yc), mse_metric(y)


def _tf_case(n_heads, seed):
    m = planted_transformer(n_heads=n_heads, seed=seed)
    (t, a), (tc, ac) = marker_task(64, seed=10 + seed), marker_task(64, seed=20 + seed)
    g = transformer_graph(m)
    with torch.no_grad():
        lg = m(t)
    return m, g, t, tc, g.labels(m.planted["true_edges"]), logit_diff_metric(a, ac), kl_metric(lg)


CASES = {
    "mlp-small": lambda: _mlp_case(8, (8, 8), 0),
    "mlp-large": lambda: _mlp_case(12, (16, 12), 1),
    "attn-2heads": lambda: _tf_case(2, 0),
    "attn-4heads": lambda: _tf_case(4, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_methods_recover_planted_edges(case):
    m, g, x, xc, truth, task_metric, dist_metric = CASES[case]()
    assert 0 < truth.sum() < len(truth)
    auc_eap = roc_auc(eap(m, g, x, xc, task_metric), truth)
    auc_ig = roc_auc(eap_ig(m, g, x, xc, task_metric, steps=5), truth)
    sweep = acdc_sweep(m, g, x, xc, distance=dist_metric, thresholds=[0.0, 1e-3, 0.1], truth=truth, progress=False)
    auc_acdc = roc_auc(sweep=sweep)
    print(f"{case}: edges={len(g)} true={int(truth.sum())} AUC EAP={auc_eap:.3f} EAP-IG={auc_ig:.3f} ACDC={auc_acdc:.3f}")
    assert auc_eap >= 0.95 and auc_ig >= 0.95 and auc_acdc >= 0.95
    # at a small threshold ACDC finds exactly the planted circuit
    best = [r for r in sweep if r["threshold"] == 1e-3][0]
    assert best["tpr"] == 1.0 and best["fpr"] == 0.0


def test_acdc_result_and_drawing():
    m, g, x, xc, truth, _, dist = CASES["attn-2heads"]()
    r = acdc(m, g, x, xc, distance=dist, threshold=1e-3, progress=False)
    assert set(r.circuit.edges) == set(m.planted["true_edges"])
    # one pass on the unpruned graph + one per tested edge; a destination is tested only while its component still
    # has an outgoing edge (or is the output): the edges into disconnected components are pruned without a pass
    kept = set(r.circuit.edges)
    outputs = {n.component for n in g.output_nodes}
    alive = {d.name for d in g.dst_nodes
             if d.component in outputs or any(e.src.component == d.component and e.name in kept for e in g.edges)}
    assert r.n_forward == 1 + sum(e.dst.name in alive for e in g.edges) < len(g) + 1
    assert r.n_model_calls < r.n_forward  # the edge tests are batched
    assert acdc(m, g, x, xc, distance=dist, threshold=1e-3, progress=False, max_batch=1).n_model_calls == r.n_forward
    ax = draw_circuit(g, r.circuit.keep, scores=eap(m, g, x, xc, CASES["attn-2heads"]()[5]))
    assert len(ax.texts) >= 4
    with pytest.raises(ValueError, match="threshold"):
        acdc(m, g, x, xc, distance=dist, threshold=-1)


def test_node_attribution_ranks_circuit_heads_first():
    m, g, x, xc, _, metric, _ = CASES["attn-4heads"]()
    s = attribution_patching(m, g, x, xc, metric)
    top = sorted(s, key=lambda k: -abs(s[k]))[:3]
    assert set(top) == {"A1.0", "A0.0", "embed"}
    assert all(s[k] == 0 for k in ("A0.1", "A1.1", "A0.3", "A1.3"))
