"""The Culture study's GPT (models/gpt), its TransformerLens twin, training (learners/gpt) and evaluation."""
import numpy as np
import pytest
import torch

from rlinterp.envs.quizzes import FORWARD, QuizWorld
from rlinterp.learners.gpt import TrainConfig, load_run, train
from rlinterp.models.gpt import GPTConfig, MyGPT, generate, sinusoidal_table, to_hooked_transformer, with_bos
from rlinterp.studies.culture import evaluate, predict_answers

WORLD = QuizWorld()
TINY_WORLD = {"height": 6, "width": 6, "n_colors": 7}


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    m = MyGPT(GPTConfig(vocab_size=WORLD.vocab_size, n_ctx=WORLD.seq_len, d_model=64, n_layers=2, seed=3)).eval()
    with torch.no_grad():  # untrained LayerNorm/bias values are trivial: make them generic
        for n, p in m.named_parameters():
            if "ln" in n or "bias" in n:
                p.add_(0.3 * torch.randn_like(p))
    return m, to_hooked_transformer(m)


@pytest.fixture(scope="module")
def heldout():
    return WORLD.generate(16, 7, split="heldout")


def test_sinusoidal_table_is_fleurets():
    pe = sinusoidal_table(5, 4, 1e5)
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(5.0)))
    assert torch.allclose(pe[:, 1], torch.cos(torch.arange(5.0)))
    assert torch.allclose(pe[:, 2], torch.sin(torch.arange(5.0) / 1e5 ** 0.5))


def test_converted_logits_match_the_original(pair, heldout):
    m, h = pair
    x = torch.from_numpy(WORLD.to_tokens(heldout))
    with torch.no_grad():
        a, b = m(x), h(with_bos(x)[:, :-1])
    assert a.shape == b.shape == (16, WORLD.seq_len, WORLD.vocab_size)
    assert (a - b).abs().max().item() <= 1e-4
    # the logits at position t do not depend on token t (input shifted right by one)
    y = x.clone()
    y[:, 50] = (y[:, 50] + 1) % WORLD.vocab_size
    with torch.no_grad():
        c = m(y)
    assert torch.equal(a[:, :51], c[:, :51]) and not torch.allclose(a[:, 51:], c[:, 51:])


def test_generation_with_kv_cache_equals_without(pair, heldout):
    m, h = pair
    x = torch.from_numpy(WORLD.to_tokens(heldout[:6]))
    mask = torch.from_numpy(WORLD.answer_mask())
    prompt = x.clone()
    prompt[:, mask] = 0
    g_orig, lp_orig = generate(m, prompt, mask)
    g_nocache, lp_nocache = generate(h, prompt, mask, use_past_kv_cache=False)
    g_cache, lp_cache = generate(h, prompt, mask, use_past_kv_cache=True)
    assert torch.equal(g_cache, g_nocache) and torch.equal(g_cache, g_orig)
    assert torch.allclose(lp_cache, lp_nocache, atol=1e-4) and torch.allclose(lp_cache, lp_orig, atol=1e-4)
    assert torch.equal(g_cache[:, ~mask], x[:, ~mask])  # only the answer is written
    # sampling with the cache: same seed, same quizzes, both ways
    s1, _ = generate(h, prompt, mask, temperature=1.5, generator=torch.Generator().manual_seed(1))
    s2, _ = generate(h, prompt, mask, temperature=1.5, generator=torch.Generator().manual_seed(1),
                     use_past_kv_cache=False)
    assert torch.equal(s1, s2)
    assert np.array_equal(predict_answers(h, WORLD, heldout[:6]), predict_answers(m, WORLD, heldout[:6]))


def test_run_with_cache_exposes_the_usual_hooks(pair, heldout):
    _, h = pair
    x = with_bos(torch.from_numpy(WORLD.to_tokens(heldout[:2])))[:, :-1]
    _, cache = h.run_with_cache(x)
    for name in ("hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_normalized",
                 "blocks.0.attn.hook_q", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
                 "blocks.1.mlp.hook_post", "blocks.1.hook_mlp_out", "blocks.1.hook_resid_post",
                 "ln_final.hook_normalized"):
        assert name in cache, name
    assert cache["blocks.0.attn.hook_pattern"].shape == (2, 4, WORLD.seq_len, WORLD.seq_len)
    assert (cache["blocks.1.mlp.hook_post"] >= 0).all()  # ReLU
    assert torch.equal(cache["ln_final.hook_normalized"], cache["blocks.1.hook_resid_post"])  # no final LayerNorm


def test_bad_configs_fail_early():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(d_model=30, n_heads=4).validate()
    with pytest.raises(ValueError, match="n_layers"):
        GPTConfig(n_layers=0).validate()
    with pytest.raises(ValueError, match="structs"):
        TrainConfig(structs=(7,)).validate()
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0).validate()


def _tiny_cfg(**kw):
    base = dict(world=TINY_WORLD, model=dict(d_model=32, n_layers=2, n_heads=2, d_mlp=64), pool_size=200,
                n_steps=6, batch_size=8, warmup=2, ckpt_every=2, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def test_training_is_deterministic_and_resume_equals_uninterrupted(tmp_path):
    m1, log1 = train(_tiny_cfg(), tmp_path / "a", progress=False, device="cpu")
    m2, log2 = train(_tiny_cfg(), tmp_path / "b", progress=False, device="cpu")
    assert log1["loss"] == log2["loss"] and len(log1["loss"]) == 6
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    # interrupted after 3 steps (checkpointed), then resumed
    train(_tiny_cfg(), tmp_path / "c", progress=False, device="cpu", stop_after=3)
    m3, log3 = train(_tiny_cfg(), tmp_path / "c", progress=False, device="cpu")
    assert log3["loss"] == log1["loss"]
    for p, q in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(p, q)
    m4, cfg4, lg4 = load_run(tmp_path / "c")
    assert lg4["step"] == 6 and cfg4.seed == 5
    with pytest.raises(ValueError, match="different TrainConfig"):
        train(_tiny_cfg(lr=5e-4), tmp_path / "c", progress=False, device="cpu")


def test_a_tiny_model_learns_an_easy_task(tmp_path):
    """replace_color, forward structure only: the answer cells' teacher-forced accuracy rises from chance."""
    torch.set_num_threads(1)
    cfg = _tiny_cfg(world=dict(TINY_WORLD, tasks=("replace_color",)), structs=(0,), pool_size=400, n_steps=400,
                    batch_size=16, lr=3e-3, warmup=10, ckpt_every=1000,
                    model=dict(d_model=48, n_layers=2, n_heads=2, d_mlp=96))
    w = cfg.make_world()
    test = w.generate(64, 11, split="heldout")
    x = torch.from_numpy(w.to_tokens(test, FORWARD))
    mask = torch.from_numpy(w.answer_mask())

    def cell_acc(model):
        with torch.no_grad():
            return (model(x).argmax(-1)[:, mask] == x[:, mask]).float().mean().item()

    before = cell_acc(MyGPT(cfg.gpt_config()).eval())
    model, log = train(cfg, tmp_path / "easy", progress=False, device="cpu")
    after = cell_acc(model)
    assert before < 0.4 and after > 0.8, (before, after)
    assert np.mean(log["loss"][-20:]) < 0.6 * np.mean(log["loss"][:5])
    res = evaluate(model, w, test)
    assert set(res["per_task"]) == {"replace_color"} and res["n"]["replace_color"] == 64
    m, lo, hi = res["all"]
    assert 0 <= lo <= m <= hi <= 1 and res["answers"].shape == (64, 6, 6)
