"""The artifact registry: every shipped file declared once, loaded hash-verified, rebuilt without touching data/."""
import dataclasses
import hashlib
import shutil
import subprocess
import sys

import pytest
import torch

from rlinterp import DATA, ROOT, artifacts
from rlinterp.pipeline import manifest
from rlinterp.pipeline.manifest import DataError

MODELS = ["coinflip/dqn", "highway/ego_attention", "highway/mlp", "ad/darkroom_ad", "ad/darkroom_ed",
          "ad/darkroom_ad_qlearning"]
TINY_DQN = dict(n_coins=3, n_flips=8, d_hidden=16, num_games=32, total_steps=60, learning_starts=10,
                buffer_size=4096, batch_size=32, eval_every=0, target_update_every=20)


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def data_copy(tmp_path):
    shutil.copytree(DATA, tmp_path / "data")
    return tmp_path / "data"


def _old_path(name):
    """The loading idioms the registry replaced, verbatim in spirit: manifest.load_checkpoint + the constructor."""
    from rlinterp.models.ad_transformer import ADTransformer
    from rlinterp.learners.dqn import DQNConfig
    from rlinterp.models.qnet import QNetwork
    from rlinterp.models.ego_attention import build_network

    ckpt = manifest.load_checkpoint(artifacts.get(name).files[0])
    if name == "coinflip/dqn":
        model = QNetwork(DQNConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()
    if name.startswith("highway/"):
        model = build_network(ckpt["network_config"])
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()
    return ADTransformer.from_checkpoint(ckpt)


def _fixed_input(name, model):
    g = torch.Generator().manual_seed(0)
    if name == "coinflip/dqn":
        return torch.rand(8, model.cfg.d_obs, generator=g)
    if name.startswith("highway/"):
        return torch.rand(8, 15, 7, generator=g) * 2 - 1
    return torch.randint(0, model.cfg.d_vocab, (2, model.cfg.n_ctx), generator=g)


@pytest.mark.parametrize("name", MODELS)
def test_load_returns_the_ready_model_of_the_old_loading_path(name):
    model = artifacts.load(name)
    assert not model.training
    old = _old_path(name)
    x = _fixed_input(name, model)
    with torch.no_grad():
        assert torch.equal(model(x), old(x))
    if name == "coinflip/dqn":
        assert model.history["best_value"]
    elif name.startswith("highway/"):
        assert len(model.curve["return"]) == model.curve["train_config"]["episodes"]
    else:  # the attributes the explorer and chapters 2-3 used to attach by hand
        log = manifest.load_checkpoint(artifacts.get(name).files[0])["log"]
        assert model.stride == int(log["stride"]) and model.source == str(log.get("source", "q_learning"))
        assert float(model.train_log["wall_s"]) == float(log["wall_s"])


def test_declared_configs_are_the_shipped_runs():
    """Rebuilding with the declared config (the default profile) reproduces what is shipped, setting by setting."""
    from rlinterp.models.ad_transformer import ADConfig

    A = artifacts.ARTIFACTS
    assert artifacts.load("coinflip/dqn").cfg == A["coinflip/dqn"].config
    for net in ("ego_attention", "mlp"):
        shipped = artifacts.load(f"highway/{net}").curve["train_config"]
        assert shipped == dataclasses.asdict(A[f"highway/{net}"].config)
    for name in ("ad/darkroom_ad", "ad/darkroom_ed", "ad/darkroom_ad_qlearning"):
        fit, model = A[name].config, artifacts.load(name)
        assert model.ad_cfg == ADConfig(seed=fit.seed, n_ctx_episodes=fit.n_ctx_episodes, d_model=fit.d_model,
                                        n_layers=fit.n_layers, d_mlp=fit.d_mlp, cell_embedding=fit.cell_embedding)
        log = model.train_log
        assert (log["kind"], int(log["n_steps"]), int(log["batch_size"]), int(log["histories_per_goal"])) == \
               (fit.kind, fit.n_steps, fit.batch_size, fit.histories_per_goal), name
        assert int(log["stride"]) == (fit.stride if fit.kind == "ad" else 1)
        assert model.source == (fit.source if fit.kind == "ad" else "expert")
        assert (int(log["n_source_episodes"]), float(log["lr"])) == (fit.n_source_episodes, fit.lr)
        assert int(log["n_train_goals"]) == (fit.n_train_goals or 65)
    grid, ablation = A["ad/ablation"].config, artifacts.load("ad/ablation")
    assert int(ablation["n_steps"]) == grid.n_steps
    assert sorted({(v["d_model"], v["train goals"], v["seed"]) for v in ablation["variants"]}) == \
           sorted((w, n, grid.seed + r) for w in grid.d_models for n in grid.goals for r in range(grid.seeds))
    assert tuple(ablation["curves"].shape) == (len(ablation["variants"]), 16 * grid.n_eval_seeds,
                                               grid.n_eval_episodes)
    ev, cfg = artifacts.load("highway/eval"), A["highway/eval"].config
    assert (ev["n_episodes"], ev["split"], ev["seed"]) == (cfg.n_episodes, cfg.split, int(cfg.seeds[0]))
    assert list(ev["results"]) == [*artifacts.HIGHWAY_AGENTS.values(), "Always SLOWER", "Always IDLE",
                                   "Always FASTER", "Random"]


def test_heist_agent_ships_both_phases_as_declared():
    """heist/impala: the PPO network, its DAgger starting point (a separate network, not a submodule) and both
    curves, from the declared recipe; the from-scratch PPO curve from its declared config."""
    import math

    A = artifacts.ARTIFACTS
    fit, model = A["heist/impala"].config, artifacts.load("heist/impala")
    tc = model.curve["train_config"]
    assert {k: v for k, v in tc["dagger"].items() if k != "device"} == \
           {k: v for k, v in dataclasses.asdict(fit.dagger).items() if k != "device"}
    assert {k: v for k, v in tc["ppo"].items() if k != "device"} == \
           {k: v for k, v in dataclasses.asdict(fit.ppo).items() if k != "device"}
    assert len(model.curve["dagger"]) == fit.dagger.iterations
    batch = fit.ppo.num_envs * fit.ppo.num_steps
    assert len(model.curve["success"]) == math.ceil(fit.ppo.total_steps / batch)
    assert not any(k.startswith("imitation") for k in model.state_dict())
    assert not model.training and not model.imitation.training
    x = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.equal(model(x)[0], model.imitation(x)[0])  # PPO moved the weights
    scratch, cfg = artifacts.load("heist/impala_scratch"), A["heist/impala_scratch"].config
    assert {k: v for k, v in scratch["config"].items() if k != "device"} == \
           {k: v for k, v in dataclasses.asdict(cfg).items() if k != "device"}
    assert len(scratch["curve"]["success"]) == math.ceil(cfg.total_steps / (cfg.num_envs * cfg.num_steps))


def test_every_data_file_belongs_to_exactly_one_artifact():
    on_disk = set(_snapshot(DATA)) - {manifest.MANIFEST_NAME}
    known = manifest.read_manifest()
    declared = [f for a in artifacts.ARTIFACTS.values() for f in a.files]
    assert len(declared) == len(set(declared))  # no file declared twice
    assert set(declared) == on_disk == set(known)
    for a in artifacts.ARTIFACTS.values():
        assert a.command == f"rli data rebuild {a.name} --save"
        assert all(known[f]["command"] == a.command for f in a.files)
        assert dataclasses.is_dataclass(a.config) and a.kind in ("model", "table")
    assert artifacts.verify() == []


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown artifact 'coinflip/dqn.pt'; known: .*highway/mlp"):
        artifacts.load("coinflip/dqn.pt")


def test_corrupt_or_missing_file_names_the_rebuild_command(data_copy):
    payload = bytearray((data_copy / "coinflip/dqn.pt").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (data_copy / "coinflip/dqn.pt").write_bytes(bytes(payload))
    with pytest.raises(DataError, match=r"corrupt.*`rli data rebuild coinflip/dqn --save`"):
        artifacts.load("coinflip/dqn", data_dir=data_copy)
    (data_copy / "highway/mlp_curve.json").unlink()  # one file of a two-file artifact
    with pytest.raises(DataError, match=r"mlp_curve.json is missing.*`rli data rebuild highway/mlp --save`"):
        artifacts.load("highway/mlp", data_dir=data_copy)


def test_stale_evaluation_table_is_an_error(data_copy):
    entry = manifest.read_manifest(data_copy)["highway/mlp.pt"]
    manifest.register("highway/mlp.pt", entry["command"], entry["metrics"], data_copy)  # same file: still fresh
    n = artifacts.get("highway/eval").config.n_episodes
    assert artifacts.load("highway/eval", data_dir=data_copy)["n_episodes"] == n
    (data_copy / "highway/mlp.pt").write_bytes((data_copy / "highway/ego_attention.pt").read_bytes())
    manifest.register("highway/mlp.pt", entry["command"], entry["metrics"], data_copy)  # another checkpoint
    with pytest.raises(DataError, match=r"other checkpoints.*rli data rebuild highway/eval --save"):
        artifacts.load("highway/eval", data_dir=data_copy)


def test_verify_reports_unknown_and_undeclared_files(data_copy):
    assert artifacts.verify(data_copy) == []
    (data_copy / "stray.bin").write_bytes(b"x")
    (data_copy / "highway" / "old_agent.pt").write_bytes(b"y")
    problems = artifacts.verify(data_copy)
    assert len(problems) == 2 and all("is not in data/MANIFEST.json" in p for p in problems)
    assert manifest.unknown_files(data_copy) == ["highway/old_agent.pt", "stray.bin"]
    manifest.register("stray.bin", "make stray", data_dir=data_copy)  # known to the manifest, declared by no one
    assert any("stray.bin is in the manifest but no artifact declares it" in p for p in artifacts.verify(data_copy))
    cmd = [sys.executable, "-m", "rlinterp.cli", "data", "verify", "--data-dir", str(data_copy)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "old_agent.pt" in proc.stderr and "stray.bin" in proc.stderr


def test_set_command_keeps_the_file_and_its_hash(data_copy):
    before = manifest.read_manifest(data_copy)["ad/ablation.pt"]
    after = manifest.set_command("ad/ablation.pt", "something else", data_copy)
    assert after == dict(before, command="something else")
    (data_copy / "ad/ablation.pt").write_bytes(b"changed")
    with pytest.raises(DataError, match="corrupt"):
        manifest.set_command("ad/ablation.pt", "x", data_copy)


def test_rebuild_without_save_never_touches_data(tmp_path):
    before = _snapshot(DATA)
    cfg = dataclasses.replace(artifacts.ARTIFACTS["coinflip/dqn"].config, **TINY_DQN)
    lines = []
    res = artifacts.rebuild("coinflip/dqn", config=cfg, progress=False, out=tmp_path / "out", print_fn=lines.append)
    assert _snapshot(DATA) == before
    assert res["paths"] == [tmp_path / "out" / "dqn.pt"]
    model = artifacts.load_dqn(res["paths"], "cpu")
    assert model.cfg == cfg and model.history["eval_value"]
    m = res["metrics"][0]
    assert 0 < m["expected_heads"] <= m["optimal"] + 1e-9 and m["mc_games"] == 200_000
    assert any(ln.split()[0] == "expected_heads" for ln in lines)  # printed next to the shipped value


def test_save_replaces_files_atomically_and_registers_them(data_copy):
    cfg = dataclasses.replace(artifacts.ARTIFACTS["coinflip/dqn"].config, **TINY_DQN)
    res = artifacts.rebuild("coinflip/dqn", save=True, config=cfg, progress=False, data_dir=data_copy,
                            print_fn=lambda *_: None)
    assert res["paths"] == [data_copy / "coinflip/dqn.pt"]
    entry = manifest.read_manifest(data_copy)["coinflip/dqn.pt"]
    assert entry["command"] == "rli data rebuild coinflip/dqn --save" and entry["metrics"] == res["metrics"][0]
    assert artifacts.load("coinflip/dqn", data_dir=data_copy).cfg == cfg
    assert not list(data_copy.rglob("*.tmp")) and artifacts.verify(data_copy) == []


def test_failed_build_leaves_the_shipped_files_and_manifest_untouched(data_copy, monkeypatch):
    before = _snapshot(data_copy)

    def boom(config, device="cpu", progress=True):
        raise RuntimeError("training diverged")

    monkeypatch.setattr(artifacts, "build_dqn", boom)
    cfg = dataclasses.replace(artifacts.ARTIFACTS["coinflip/dqn"].config, **TINY_DQN)
    with pytest.raises(RuntimeError, match="diverged"):
        artifacts.rebuild("coinflip/dqn", save=True, config=cfg, data_dir=data_copy)

    def bad_dump(model):  # a payload that cannot be shipped (not loadable with weights_only=True)
        return [manifest.checkpoint_bytes({"x": object()}, "coinflip/dqn.pt")]

    monkeypatch.setattr(artifacts, "build_dqn", lambda config, device="cpu", progress=True: None)
    monkeypatch.setattr(artifacts, "metrics_dqn", lambda model: [{}])
    monkeypatch.setattr(artifacts, "dump_dqn", bad_dump)
    with pytest.raises(DataError, match="refusing to save"):
        artifacts.rebuild("coinflip/dqn", save=True, config=cfg, data_dir=data_copy)
    assert _snapshot(data_copy) == before  # same files, same manifest, no temp file


def test_shipped_files_are_only_replaced_with_the_declared_config(monkeypatch):
    monkeypatch.setattr(artifacts, "build_dqn", lambda *a, **k: pytest.fail("must refuse before building"))
    cfg = dataclasses.replace(artifacts.ARTIFACTS["coinflip/dqn"].config, total_steps=10)
    with pytest.raises(ValueError, match=r"refusing to overwrite the shipped coinflip/dqn.*total_steps"):
        artifacts.rebuild("coinflip/dqn", save=True, config=cfg)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        artifacts.save("coinflip/dqn", object(), config=cfg)


def test_configs_are_checked_before_anything_runs():
    with pytest.raises(TypeError, match="built from a DQNConfig, got HighwayEval"):
        artifacts.build("coinflip/dqn", config=artifacts.HighwayEval())
    with pytest.raises(ValueError, match="kind"):
        artifacts.DarkroomFit(kind="bc")
    with pytest.raises(ValueError, match="n_steps"):
        artifacts.DarkroomFit(n_steps=0)
    with pytest.raises(ValueError, match="goals"):
        artifacts.AblationGrid(goals=(4, 0))
    with pytest.raises(ValueError, match="lie in"):
        artifacts.build("ad/ablation", config=artifacts.AblationGrid(goals=(66,)))
    with pytest.raises(ValueError, match="n_episodes"):
        artifacts.HighwayEval(n_episodes=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        artifacts.ARTIFACTS["ad/ablation"].config.n_steps = 1


def test_importing_the_registry_is_light():
    code = "import sys, rlinterp.artifacts; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_list_and_rebuild_errors():
    from rlinterp import cli

    run = lambda *a: subprocess.run([sys.executable, "-m", "rlinterp.cli", "data", *a], capture_output=True,  # noqa
                                    text=True, cwd=ROOT)
    listed = run("list")
    assert listed.returncode == 0 and all(name in listed.stdout for name in artifacts.ARTIFACTS)
    assert "data/highway/mlp_curve.json" in listed.stdout
    assert cli.main(["data", "rebuild"]) == 2
    assert cli.main(["data", "rebuild", "nope"]) == 2
