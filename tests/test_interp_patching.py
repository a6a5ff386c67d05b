"""Activation patching, the edge graph and attribution patching on models where the answer is known analytically."""
import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from rlinterp.models.planted import PlantedMLP, marker_task, planted_transformer
from rlinterp.interp.attribution_patching import attribution_patching, eap, eap_ig
from rlinterp.interp.graph import get_graph, mlp_graph, transformer_graph
from rlinterp.interp.patching import ablation_cache, patch_edges, patch_nodes


class Linear2(HookedRootModule):
    """y = b · (A x): every patching effect has a closed form."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.l1, self.l2 = nn.Linear(3, 4, bias=False), nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(torch.randn(4, 3, generator=g))
            self.l2.weight.copy_(torch.randn(1, 4, generator=g))
        self.hook_x, self.hook_h, self.hook_out = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def forward(self, x):
        return self.hook_out(self.l2(self.hook_h(self.l1(self.hook_x(x)))))

    def graph(self, level="neuron"):
        return mlp_graph([("hook_x", self.l1, "hook_h"), ("hook_h", self.l2, "hook_out")], level=level)


@pytest.fixture
def lin():
    m = Linear2()
    g = torch.Generator().manual_seed(1)
    return m, torch.randn(32, 3, generator=g), torch.randn(32, 3, generator=g), torch.randn(100, 3, generator=g)


def test_node_patching_modes_match_closed_form(lin):
    m, x, xc, ref = lin
    graph = get_graph(m)
    metric = lambda y: y.mean()  # noqa: E731
    w = (m.l2.weight @ m.l1.weight).detach()[0]  # [3] total effect of each input
    expect = {
        "zero": -(w * x).mean(0),
        "mean": -(w * (x - ref.mean(0))).mean(0),
        "resample": -(w * (x - xc)).mean(0),
    }
    inputs = [n for n in graph.src_nodes if n.hook == "hook_x"]
    for mode, exp in expect.items():
        got = patch_nodes(m, graph, x, metric, mode, corrupted=xc, reference=ref, nodes=inputs, progress=False)
        torch.testing.assert_close(torch.stack([got[f"in.{i}"] for i in range(3)]), exp, atol=1e-5, rtol=1e-4)


def test_edge_patching_closed_form_and_eap_exact_on_linear(lin):
    m, x, xc, _ = lin
    graph = m.graph()
    metric = lambda y: y.mean()  # noqa: E731
    eff = patch_edges(m, graph, x, metric, "resample", corrupted=xc, progress=False)
    A, b = m.l1.weight.detach(), m.l2.weight.detach()[0]
    h, hc = x @ A.T, xc @ A.T
    for e, v in zip(graph.edges, eff):
        if e.src.hook == "hook_x":  # in.i -> h.j : b_j A_ji (x'_i - x_i)
            i, j = e.s, e.n
            exp = (b[j] * A[j, i] * (xc[:, i] - x[:, i])).mean()
        else:  # h.j -> out.0 : b_j (h'_j - h_j)
            exp = (b[e.s] * (hc[:, e.s] - h[:, e.s])).mean()
        torch.testing.assert_close(v, exp, atol=1e-5, rtol=1e-4)
    # a linear model with a linear metric: attribution patching is exact
    torch.testing.assert_close(eap(m, graph, x, xc, metric), eff, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(eap_ig(m, graph, x, xc, metric, steps=3), eff, atol=1e-5, rtol=1e-4)
    nodes = patch_nodes(m, graph, x, metric, "resample", corrupted=xc, progress=False)
    ap = attribution_patching(m, graph, x, xc, metric)
    for k, v in nodes.items():
        assert ap[k] == pytest.approx(float(v), abs=1e-5)


def test_masked_forward_all_and_none():
    for model, (x, xc) in [
        (PlantedMLP(), (PlantedMLP().sample(64, 1), PlantedMLP().sample(64, 2))),
        (planted_transformer(n_heads=3), (marker_task(32, seed=1)[0], marker_task(32, seed=2)[0])),
    ]:
        graph = get_graph(model)
        patch = ablation_cache(model, graph.src_hooks, x, "resample", xc)
        with torch.no_grad():
            torch.testing.assert_close(graph.forward(model, x, patch, graph.ones(0.0)), model(xc))
            torch.testing.assert_close(graph.forward(model, x, patch, graph.ones(1.0)), model(x))


def test_per_position_patching_only_last_position_matters():
    m = planted_transformer()
    toks, ans = marker_task(64, seed=1)
    toks_c, _ = marker_task(64, seed=2)
    graph = transformer_graph(m)
    metric = lambda lg: lg[:, -1].gather(-1, ans[:, None]).mean()  # noqa: E731
    node = [n for n in graph.src_nodes if n.name == "A1.0"]
    for mode in ("zero", "mean", "resample"):
        eff = patch_nodes(m, graph, toks, metric, mode, corrupted=toks_c, nodes=node, per_position=True,
                          progress=False)["A1.0"]
        assert eff.shape == (toks.shape[1],)
        assert torch.all(eff[:-1] == 0)
        assert eff[-1] < -1.0  # the copying head's output at the last position carries the answer


def test_bad_mode_raises(lin):
    m, x, _, _ = lin
    with pytest.raises(ValueError, match="mode"):
        ablation_cache(m, ["hook_x"], x, "median")
    with pytest.raises(ValueError, match="corrupted"):
        ablation_cache(m, ["hook_x"], x, "resample")


def test_masks_roundtrip_and_layer_graph():
    m = PlantedMLP()
    g = m.graph()
    truth = g.labels(m.true_edges())
    assert torch.equal(g.to_vector(g.masks_from(m.true_edges())) > 0.5, truth)
    assert torch.equal(g.to_vector(g.masks_from(truth)) > 0.5, truth)
    with pytest.raises(ValueError, match="unknown edge"):
        g.masks_from({"in.0->nowhere"})
    gl = m.graph(level="layer")
    assert gl.names == ["in->h0", "h0->h1", "h1->out"]
    x, xc = m.sample(16, 1), m.sample(16, 2)
    patch = ablation_cache(m, gl.src_hooks, x, "resample", xc)
    masks = gl.masks_from({"in->h0", "h0->h1"})  # patch only the last layer's input
    with torch.no_grad():
        _, cache = m.run_with_cache(xc)
        torch.testing.assert_close(gl.forward(m, x, patch, masks), m.head(cache["mlp.1.hook_post"]))
