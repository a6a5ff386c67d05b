"""Tests of the Heist agents (models/impala.py): shapes, hooks, parameter counts, checkpoint size."""
import io

import numpy as np
import pytest
import torch

from rlinterp.envs.heist import BatchedHeist, HeistConfig
from rlinterp.models.impala import ImpalaAgent, ImpalaConfig, build_network, hook_names

EXPECTED_RELU = {  # name -> shape for a 32x32 input, batch 2
    "hook_obs": (2, 3, 32, 32),
    "blocks.0.conv.hook_out": (2, 16, 32, 32), "blocks.0.hook_post": (2, 16, 32, 32),
    "blocks.0.pool.hook_out": (2, 16, 16, 16),
    "blocks.1.conv.hook_out": (2, 32, 16, 16), "blocks.1.hook_post": (2, 32, 16, 16),
    "blocks.2.conv.hook_out": (2, 32, 16, 16), "blocks.2.hook_post": (2, 32, 16, 16),
    "blocks.2.pool.hook_out": (2, 32, 8, 8),
    "blocks.3.conv.hook_out": (2, 32, 8, 8), "blocks.3.hook_post": (2, 32, 8, 8), "blocks.3.pool.hook_out": (2, 32, 4, 4),
    "blocks.4.conv.hook_out": (2, 32, 4, 4), "blocks.4.hook_post": (2, 32, 4, 4), "blocks.4.pool.hook_out": (2, 32, 2, 2),
    "hook_flatten": (2, 128),
    "mlp.0.hook_pre": (2, 256), "mlp.0.hook_post": (2, 256), "mlp.1.hook_pre": (2, 512), "mlp.1.hook_post": (2, 512),
    "hook_logits": (2, 9), "hook_value": (2,),
}


def _obs(n=2, cfg=None):
    return BatchedHeist(n, cfg or HeistConfig(), seed=0).obs()


@pytest.mark.parametrize("kind", ["impala", "bimpala"])
def test_shapes_and_every_hook_fires(kind):
    torch.manual_seed(0)
    m = ImpalaAgent(ImpalaConfig(kind=kind))
    logits, value = m(_obs())
    assert logits.shape == (2, 9) and value.shape == (2,)
    _, cache = m.run_with_cache(_obs())
    names = set(hook_names(m))
    assert names == set(cache.keys())  # every hook fired
    expected = dict(EXPECTED_RELU)
    if kind == "bimpala":
        for i in range(5):
            expected[f"blocks.{i}.conv.hook_a"] = expected[f"blocks.{i}.conv.hook_b"] = expected[f"blocks.{i}.conv.hook_out"]
            torch.testing.assert_close(cache[f"blocks.{i}.conv.hook_out"],
                                       cache[f"blocks.{i}.conv.hook_a"] * cache[f"blocks.{i}.conv.hook_b"])
        for j, d in enumerate((256, 512)):
            expected[f"mlp.{j}.hook_a"] = expected[f"mlp.{j}.hook_b"] = (2, d)
        # every bilinear layer but the first reads its input RMS-normalised over all non-batch dimensions
        inputs = {1: "blocks.0.pool.hook_out", 2: "blocks.1.hook_post", 3: "blocks.2.pool.hook_out",
                  4: "blocks.3.pool.hook_out", "mlp.0": "hook_flatten", "mlp.1": "mlp.0.hook_post"}
        for i, src in inputs.items():
            pre = f"blocks.{i}.norm" if isinstance(i, int) else f"{i}.norm"
            x = cache[src]
            expected[f"{pre}.hook_normalized"] = tuple(x.shape)
            expected[f"{pre}.hook_scale"] = (2,) + (1,) * (x.ndim - 1)
            rms = x.pow(2).flatten(1).mean(1).add(1e-5).sqrt()
            torch.testing.assert_close(cache[f"{pre}.hook_scale"].flatten(), rms)
            torch.testing.assert_close(cache[f"{pre}.hook_normalized"],
                                       x / rms.reshape(-1, *(1,) * (x.ndim - 1)))
        assert "blocks.0.norm.hook_scale" not in cache  # pixels are read as they are
    else:
        torch.testing.assert_close(cache["blocks.1.hook_post"], cache["blocks.1.conv.hook_out"].relu())
    assert names == set(expected)
    for n, s in expected.items():
        assert tuple(cache[n].shape) == s, n
    # the pool is LPPool(2): sqrt of the sum of squares over 2x2 windows
    post = cache["blocks.0.hook_post"]
    torch.testing.assert_close(cache["blocks.0.pool.hook_out"][:, :, 0, 0], post[:, :, :2, :2].pow(2).sum((2, 3)).sqrt())


def test_hooks_change_outputs():
    m = ImpalaAgent()
    obs = _obs()
    base = m(obs)[0]
    out = m.run_with_hooks(obs, fwd_hooks=[("blocks.3.hook_post", lambda x, hook: torch.zeros_like(x))])[0]
    assert not torch.allclose(base, out)


def test_parameter_counts_and_checkpoint_size():
    relu = ImpalaAgent(ImpalaConfig())
    conv = 3 * 16 * 49 + 16 + 16 * 32 * 25 + 32 + 3 * (32 * 32 * 25 + 32)
    mlp = 128 * 256 + 256 + 256 * 512 + 512
    heads = 512 * 9 + 9 + 512 + 1
    assert sum(p.numel() for p in relu.parameters()) == conv + mlp + heads == 261_834
    bil = ImpalaAgent(ImpalaConfig(kind="bimpala"))
    assert sum(p.numel() for p in bil.parameters()) == 2 * (conv + mlp) + heads
    for m in (relu, bil, ImpalaAgent(ImpalaConfig(kind="bimpala", image_size=64))):
        buf = io.BytesIO()
        torch.save({"state_dict": m.state_dict(), "network_config": m.config}, buf)
        assert buf.tell() < 10 * 2**20
        m2 = ImpalaAgent(m.config)
        m2.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=False)["state_dict"])


def test_other_sizes_and_bad_config():
    m = build_network({"kind": "impala", "image_size": 40})
    assert m(_obs(3, HeistConfig.procgen_easy()))[0].shape == (3, 9)
    with pytest.raises(ValueError, match="kind"):
        ImpalaConfig(kind="resnet")
    with pytest.raises(ValueError, match="obs must be"):
        ImpalaAgent()(np.zeros((2, 64, 64, 3), np.uint8))
    # float input in [0, 1] equals uint8 input
    obs = _obs()
    a = ImpalaAgent()
    torch.testing.assert_close(a(obs)[0], a(torch.as_tensor(obs).float() / 255)[0])
