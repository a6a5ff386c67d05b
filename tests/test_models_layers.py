"""The one hooked Dense/MLP block (used by every MLP network), the one replay buffer, and the shipped checkpoints
loading into their models."""
import numpy as np
import pytest
import torch
from transformer_lens import HookedRootModule

from rlinterp.learners.replay import ReplayBuffer
from rlinterp.models.ego_attention import EgoAttentionNetwork, MLPNetwork
from rlinterp.models.layers import MLP, Dense
from rlinterp.models.planted import PlantedMLP
from rlinterp.models.qnet import QNetwork


class _Net(HookedRootModule):
    def __init__(self):
        super().__init__()
        self.mlp = MLP(4, [6, 5])
        self.setup()

    def forward(self, x):
        return self.mlp(x)


def test_dense_and_mlp_hooks():
    torch.manual_seed(0)
    d = Dense(3, 4)
    x = torch.randn(7, 3)
    np.testing.assert_allclose(d(x).detach(), torch.relu(d.linear(x)).detach())
    net = _Net()
    y, cache = net.run_with_cache(torch.randn(2, 4))
    assert set(cache.keys()) == {"mlp.0.hook_pre", "mlp.0.hook_post", "mlp.1.hook_pre", "mlp.1.hook_post",
                                 "mlp.hook_out"}
    assert cache["mlp.1.hook_pre"].shape == (2, 5) and torch.equal(cache["mlp.hook_out"], y)
    assert torch.equal(cache["mlp.0.hook_post"], torch.relu(cache["mlp.0.hook_pre"]))


def test_every_mlp_network_uses_the_one_block():
    from rlinterp.learners.dqn import DQNConfig

    nets = [QNetwork(DQNConfig(d_hidden=8)), EgoAttentionNetwork(), MLPNetwork(), PlantedMLP()]
    for net in nets:
        blocks = [m for m in net.modules() if isinstance(m, Dense)]
        assert blocks, type(net).__name__
        assert not any(type(m).__name__ in ("MLPLayer", "_Layer") for m in net.modules())
        assert isinstance(net.head, torch.nn.Linear)  # the readout layer has one name everywhere
    for net in nets[:3]:  # every Q-network exposes its Q-values at the same hook
        assert "hook_q_values" in net.hook_dict and "hook_q" not in net.hook_dict


def test_replay_buffer_ring_and_sampling():
    buf = ReplayBuffer(5, (2,))
    buf.add(np.ones(2), 1, 0.5, np.zeros(2), False)  # one transition
    obs = torch.arange(12.0).reshape(6, 2)
    buf.add(obs, torch.arange(6), torch.ones(6), obs + 1, torch.zeros(6))  # a batch that wraps around
    assert len(buf) == 5 and buf.pos == 2
    np.testing.assert_array_equal(buf.action.numpy(), [4, 5, 1, 2, 3])
    b1 = buf.sample(8, torch.Generator().manual_seed(0))
    b2 = buf.sample(8, torch.Generator().manual_seed(0))
    assert set(b1) == {"obs", "action", "reward", "next_obs", "done"} and b1["obs"].shape == (8, 2)
    assert all(torch.equal(b1[k], b2[k]) for k in b1)
    b3 = buf.sample(8, np.random.default_rng(0))
    np.testing.assert_array_equal(b3["next_obs"].numpy(), b3["obs"].numpy() + 1)
    other = ReplayBuffer(5, (2,))
    other.load_state_dict(buf.state_dict())
    assert all(torch.equal(getattr(buf, k), getattr(other, k)) for k in ("obs", "action", "reward", "done"))
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2).sample(1, np.random.default_rng(0))
    old_format = {k: v for k, v in buf.state_dict().items() if k != "done"} | {"terminal": buf.done[:5]}
    with pytest.raises(ValueError, match=r"lacks \['done'\]"):  # a buffer state from another version: clear error
        ReplayBuffer(5, (2,)).load_state_dict(old_format)


def test_every_shipped_checkpoint_loads_into_its_model():
    """Each shipped network checkpoint loads strictly (every state-dict key matches) into its model class."""
    from rlinterp import artifacts
    from rlinterp.models.ad_transformer import ADTransformer
    from rlinterp.pipeline.manifest import load_checkpoint, read_manifest

    shipped = {name for name in read_manifest() if name.endswith(".pt")}
    loaded = set()
    assert isinstance(artifacts.load("coinflip/dqn"), QNetwork)
    loaded.add("coinflip/dqn.pt")
    for name, cls in (("ego_attention", EgoAttentionNetwork), ("mlp", MLPNetwork)):
        assert isinstance(artifacts.load(f"highway/{name}"), cls)
        loaded.add(f"highway/{name}.pt")
    for name in ("ad/darkroom_ad.pt", "ad/darkroom_ed.pt", "ad/darkroom_ad_qlearning.pt"):
        assert isinstance(ADTransformer.from_checkpoint(load_checkpoint(name)), ADTransformer)
        loaded.add(name)
    from rlinterp.models.impala import ImpalaAgent

    for kind in ("impala", "bimpala"):
        heist = artifacts.load(f"heist/{kind}")
        assert isinstance(heist, ImpalaAgent) and isinstance(heist.imitation, ImpalaAgent)
        assert heist.config["kind"] == heist.imitation.config["kind"] == kind
        loaded |= {f"heist/{kind}.pt", f"heist/{kind}_dagger.pt"}
    assert shipped - loaded <= {"ad/ablation.pt"}  # ablation.pt holds results, not a network
