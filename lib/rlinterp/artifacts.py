"""Every shipped file in ``data/`` declared once: name -> builder + config + loader + rebuild command.

    from rlinterp import artifacts

    model = artifacts.load("coinflip/dqn")            # hash-verified, ready: eval mode, every attribute set
    artifacts.rebuild("highway/mlp")                  # build again into runs/rebuild/highway/mlp/, compare metrics
    artifacts.rebuild("highway/mlp", save=True)       # ... and replace data/highway/mlp.pt + curve, registered

(``rli data list | verify | rebuild NAME [--save]`` on the command line.) An :class:`Artifact` names the ``data/``
files it owns, the config that builds it (a dataclass: the default profile, i.e. the shipped run) and four
functions given as ``"module:function"`` strings, imported only when used (importing this module is cheap):

- ``build(config, device, progress, **inputs) -> obj`` computes the object (trains a model, evaluates policies).
  The chapters' ``retrain=True`` paths call it through :func:`build` and ``rli data rebuild`` through
  :func:`rebuild`, so both rebuild the same way;
- ``load(paths, device, data_dir) -> obj`` returns the object from its hash-verified files: a model in eval mode with
  the attributes its users need (e.g. an AD model's ``stride``, ``source`` and ``train_log``), or a dict;
- ``dump(obj) -> [bytes per file]`` serialises the object (in the order of ``files``);
- ``metrics(obj) -> [dict per file]`` gives the numbers recorded in ``data/MANIFEST.json`` and printed by a rebuild.

A chapter's ``save=True`` goes through :func:`save` (the shipped files are only replaced by an object built with the
declared config); :func:`verify` is ``rli data verify``.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlinterp import DATA, ROOT
from rlinterp.pipeline.manifest import DataError

# ----------------------------------------------------------------------------------------------------------------
# Configs of what had none (the trainers' own configs, DQNConfig and DDQNConfig, are used where they exist)


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{type(obj).__name__}.{name} must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class DarkroomFit:
    """One AD or ED transformer trained on Dark Room (arguments of ``ad_transformer.fit_darkroom``)."""

    kind: str = "ad"  # "ad": distil a learner's histories; "ed": expert episodes
    source: str = "psrl"  # the learner AD distils (a key of sources.DARKROOM_LEARNERS); not used by ED
    n_train_goals: int | None = None  # train on the first n goals of the training split (None: all of them)
    histories_per_goal: int = 100  # independent learner histories (or expert windows) per training goal
    n_source_episodes: int = 12  # episodes per learner history
    stride: int = 1  # episodes between the context's episodes in a training window
    n_steps: int = 3000  # gradient steps
    batch_size: int = 32  # windows per gradient step
    lr: float = 1e-3
    seed: int = 0
    n_ctx_episodes: int = 10  # whole episodes in the context
    d_model: int = 64
    n_layers: int = 3
    d_mlp: int = 256
    cell_embedding: bool = False  # a free vector per cell on top of its x, y embeddings
    room_size: int = 9  # the Dark Room (room_size x room_size, odd); the model's config records it (grid_size)

    def __post_init__(self):
        from rlinterp.envs.darkroom import check_size

        if self.kind not in ("ad", "ed"):
            raise ValueError(f"DarkroomFit.kind must be 'ad' or 'ed', got {self.kind!r}")
        check_size(self.room_size, "DarkroomFit.room_size")
        _check_positive(self, "histories_per_goal", "n_source_episodes", "stride", "n_steps", "batch_size",
                        "n_ctx_episodes", "d_model", "n_layers", "d_mlp")
        if self.n_train_goals is not None:
            _check_positive(self, "n_train_goals")
        if not self.lr > 0:
            raise ValueError(f"DarkroomFit.lr must be > 0, got {self.lr!r}")


@dataclass(frozen=True)
class AblationGrid:
    """AD model width x number of training goals, the same total number of histories for every goal count."""

    goals: tuple[int, ...] = (4, 16, 65)  # numbers of training goals (the first n of the training split)
    d_models: tuple[int, ...] = (32,)  # widths (d_model < 64: 2 layers, else 3; d_mlp = 4 d_model)
    n_steps: int = 3000  # gradient steps per variant
    seeds: int = 2  # training seeds per variant (seed, seed + 1, ...)
    histories_per_goal: int = 100  # with all training goals; scaled up for fewer goals
    n_source_episodes: int = 12
    n_ctx_episodes: int = 10
    batch_size: int = 32
    seed: int = 0
    n_eval_episodes: int = 20  # in-context episodes per evaluation rollout
    n_eval_seeds: int = 5  # rollouts per held-out goal
    room_size: int = 9  # the Dark Room of every variant (odd)

    def __post_init__(self):
        from rlinterp.envs.darkroom import check_size

        check_size(self.room_size, "AblationGrid.room_size")
        object.__setattr__(self, "goals", tuple(self.goals))
        object.__setattr__(self, "d_models", tuple(self.d_models))
        if not self.goals or not self.d_models:
            raise ValueError("AblationGrid needs at least one goal count and one width")
        for name in ("goals", "d_models"):
            for v in getattr(self, name):
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"AblationGrid.{name} entries must be integers >= 1, got {v!r}")
        _check_positive(self, "n_steps", "seeds", "histories_per_goal", "n_source_episodes", "n_ctx_episodes",
                        "batch_size", "n_eval_episodes", "n_eval_seeds")


@dataclass(frozen=True)
class HighwayEval:
    """Greedy evaluation of the highway agents and the scripted baselines, paired on the same scenes: the first
    ``n_episodes`` seeds of the ``split`` range of :func:`rlinterp.seeds.split` ``("highway")`` ("test": the
    reported numbers; "validation": for choosing)."""

    n_episodes: int = 500  # episodes per policy (the same scenes for every policy)
    split: str = "test"  # "test" or "validation" seeds
    random_seed: int = 0  # seed of the uniformly random policy (reseeded per episode with the scene's seed)
    # intersection-v0 config keys on top of the rl-agents configuration, e.g. a traffic density
    # (rlinterp.envs.highway.density); {}: the environment the shipped agents were trained on
    env_overrides: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check_positive(self, "n_episodes")
        if self.split not in ("test", "validation"):
            raise ValueError(f"HighwayEval.split must be 'test' or 'validation', got {self.split!r}")
        if isinstance(self.random_seed, bool) or not isinstance(self.random_seed, int) or self.random_seed < 0:
            raise ValueError(f"HighwayEval.random_seed must be an integer >= 0, got {self.random_seed!r}")
        if not isinstance(self.env_overrides, dict):
            raise ValueError(f"HighwayEval.env_overrides must be a dict of intersection-v0 config keys, got "
                             f"{self.env_overrides!r}")
        if self.env_overrides:  # unknown keys and out-of-range densities fail here, before any episode
            from rlinterp.envs.highway import env_config

            env_config(**self.env_overrides)

    @property
    def seeds(self):
        """The environment seeds, an int64 array of ``n_episodes``."""
        from rlinterp.seeds import split

        s = split("highway")
        return s.test_seeds(self.n_episodes) if self.split == "test" else s.validation_seeds(self.n_episodes)


def _dagger_default():
    from rlinterp.learners.dagger import DAggerConfig

    return DAggerConfig()


def _ppo_default():
    from rlinterp.learners.ppo import PPOConfig

    return PPOConfig(total_steps=300_000, num_envs=32, num_steps=64, num_minibatches=4, lr=2.5e-4)


@dataclass
class HeistAgentFit:
    """The Heist agent recipe: DAgger from the BFS oracle (``learners/dagger.py``), then PPO on the game's own reward
    (``learners/ppo.py``) starting from the DAgger weights (``ppo.init`` is filled in by the build; leave it "").
    Why two phases: PPO from a random initialisation stayed at the random policy's success rate for 237k steps
    (the agent chapter shows that run), and 2 CPU cores allow ~2M steps in 2 h."""

    dagger: Any = dataclasses.field(default_factory=_dagger_default)  # a DAggerConfig
    ppo: Any = dataclasses.field(default_factory=_ppo_default)  # a PPOConfig

    def __post_init__(self):
        from rlinterp.learners.dagger import DAggerConfig
        from rlinterp.learners.ppo import PPOConfig

        if not isinstance(self.dagger, DAggerConfig) or not isinstance(self.ppo, PPOConfig):
            raise TypeError("HeistAgentFit needs a DAggerConfig (dagger) and a PPOConfig (ppo)")
        if self.dagger.network != self.ppo.network or self.dagger.env != self.ppo.env:
            raise ValueError(f"HeistAgentFit: DAgger and PPO must train the same network on the same levels, got "
                             f"{self.dagger.network}/{self.dagger.env} and {self.ppo.network}/{self.ppo.env}")
        if self.ppo.init:
            raise ValueError("HeistAgentFit.ppo.init must be empty: the build starts PPO from its own DAgger run")
        self.dagger.validate()
        self.ppo.validate()


# ----------------------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Artifact:
    """One shipped object: its ``data/`` files and how it is built, loaded, written and measured."""

    name: str  # e.g. "coinflip/dqn"
    files: tuple[str, ...]  # paths relative to data/, e.g. ("highway/mlp.pt", "highway/mlp_curve.json")
    kind: str  # "model" or "table"
    build: str  # "module:function" (config, device, progress, **inputs) -> obj
    config: Any  # a dataclass instance: the default profile (the shipped run)
    load: str  # "module:function" (paths, device, data_dir) -> obj
    dump: str  # "module:function" (obj) -> [bytes per file]
    metrics: str  # "module:function" (obj) -> [dict per file]
    description: str

    @property
    def command(self) -> str:
        """The command that rebuilds the shipped files (recorded in data/MANIFEST.json)."""
        return f"rli data rebuild {self.name} --save"


def _heist_fit(network: str) -> "HeistAgentFit":
    fit = HeistAgentFit()
    return HeistAgentFit(dagger=dataclasses.replace(fit.dagger, network=network),
                         ppo=dataclasses.replace(fit.ppo, network=network))


def _registry() -> dict[str, Artifact]:
    from rlinterp.learners.ddqn import DDQNConfig
    from rlinterp.learners.dqn import DQNConfig
    from rlinterp.learners.ppo import PPOConfig

    here = "rlinterp.artifacts"
    arts = [
        Artifact("coinflip/dqn", ("coinflip/dqn.pt",), "model", f"{here}:build_dqn", DQNConfig(),
                 f"{here}:load_dqn", f"{here}:dump_dqn", f"{here}:metrics_dqn",
                 "coin-flip DQN (n=5, k=20, sigma=0.3) with its training history"),
        *[Artifact(f"highway/{net}", (f"highway/{net}.pt", f"highway/{net}_curve.json"), "model",
                   f"{here}:build_ddqn", DDQNConfig(network=net, episodes=3000, seed=0, num_envs=2),
                   f"{here}:load_ddqn", f"{here}:dump_ddqn", f"{here}:metrics_ddqn",
                   f"intersection-v0 Double DQN, {label} network, with its training curve")
          for net, label in (("ego_attention", "ego-attention"), ("mlp", "MLP"))],
        Artifact("highway/eval", ("highway/eval.json",), "table", f"{here}:build_highway_eval", HighwayEval(),
                 f"{here}:load_highway_eval", f"{here}:dump_json", f"{here}:metrics_highway_eval",
                 "greedy evaluation of both highway agents and the scripted baselines"),
        Artifact("ad/darkroom_ad", ("ad/darkroom_ad.pt",), "model", f"{here}:build_darkroom", DarkroomFit(),
                 f"{here}:load_darkroom", f"{here}:dump_darkroom", f"{here}:metrics_darkroom",
                 "Algorithm Distillation transformer, PSRL source, 10-episode context"),
        Artifact("ad/darkroom_ed", ("ad/darkroom_ed.pt",), "model", f"{here}:build_darkroom",
                 DarkroomFit(kind="ed", n_steps=1500),
                 f"{here}:load_darkroom", f"{here}:dump_darkroom", f"{here}:metrics_darkroom",
                 "expert-distillation transformer (same architecture, expert episodes)"),
        Artifact("ad/darkroom_ad_qlearning", ("ad/darkroom_ad_qlearning.pt",), "model", f"{here}:build_darkroom",
                 DarkroomFit(source="q_learning", histories_per_goal=10, n_source_episodes=120, stride=4,
                             n_ctx_episodes=4, cell_embedding=True),
                 f"{here}:load_darkroom", f"{here}:dump_darkroom", f"{here}:metrics_darkroom",
                 "Algorithm Distillation transformer, Q-learning source, 4 episodes at stride 4"),
        *[Artifact(f"heist/{net}", (f"heist/{net}.pt", f"heist/{net}_curve.json", f"heist/{net}_dagger.pt"),
                   "model", f"{here}:build_heist",
                   _heist_fit(net), f"{here}:load_heist", f"{here}:dump_heist", f"{here}:metrics_heist",
                   f"Heist agent, {label}: DAgger from the BFS oracle, then PPO; with both phases' curves")
          for net, label in (("impala", "the seed's CNN"), ("bimpala", "the bilinear (Bimpala) network"))],
        Artifact("heist/impala_scratch", ("heist/impala_scratch_curve.json",), "table", f"{here}:build_heist_scratch",
                 PPOConfig(total_steps=204_800), f"{here}:load_json", f"{here}:dump_json",
                 f"{here}:metrics_heist_scratch", "PPO from a random initialisation (the run that did not learn)"),
        Artifact("ad/ablation", ("ad/ablation.pt",), "table", f"{here}:build_ablation", AblationGrid(),
                 f"{here}:load_torch", f"{here}:dump_torch", f"{here}:metrics_ablation",
                 "AD ablation: model width x number of training goals, held-out curves per variant"),
    ]
    return {a.name: a for a in arts}


_REGISTRY: dict[str, Artifact] = {}


def _all() -> dict[str, Artifact]:
    """The registry, built on first use (the configs' modules import torch; importing this module does not)."""
    if not _REGISTRY:
        _REGISTRY.update(_registry())
    return _REGISTRY


def __getattr__(name: str):  # ``artifacts.ARTIFACTS``: the one registry, name -> Artifact
    if name == "ARTIFACTS":
        return _all()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(name: str) -> Artifact:
    """The declared artifact ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    if not isinstance(name, str) or name not in _all():
        raise ValueError(f"unknown artifact {name!r}; known: {', '.join(sorted(_all()))} (see `rli data list`)")
    return _all()[name]


def owner(file: str) -> Artifact | None:
    """The artifact that declares ``data/<file>``, or None."""
    return next((a for a in _all().values() if file in a.files), None)


def _resolve(ref: str):
    module, _, fn = ref.partition(":")
    return getattr(importlib.import_module(module), fn)


def _check_config(art: Artifact, config: Any) -> Any:
    if config is None:
        return copy.deepcopy(art.config)
    if type(config) is not type(art.config):
        raise TypeError(f"{art.name} is built from a {type(art.config).__name__}, got {type(config).__name__}")
    return config


def _config_diff(art: Artifact, config: Any) -> dict[str, tuple[Any, Any]]:
    """Fields where ``config`` differs from the declared one (a trainer's ``device`` field does not count)."""
    a, b = dataclasses.asdict(art.config), dataclasses.asdict(config)
    return {k: (a[k], b[k]) for k in a if k != "device" and a[k] != b[k]}


# ----------------------------------------------------------------------------------------------------------------
# load, build, save, rebuild, verify


def load(name: str, device: str = "cpu", data_dir: Path | None = None) -> Any:
    """The ready object of artifact ``name`` from ``data/`` after checking every file against the manifest.

    A missing, corrupt or unregistered file is a :class:`DataError` naming ``rli data rebuild NAME --save``."""
    art = get(name)
    from rlinterp.pipeline.manifest import data_path

    data_dir = Path(data_dir or DATA)
    paths = [data_path(f, data_dir, command=art.command) for f in art.files]
    try:
        return _resolve(art.load)(paths, device=device, data_dir=data_dir)
    except DataError:
        raise
    except Exception as e:  # the hash matched but the payload cannot be read: still a clear error
        raise DataError(f"{name} ({', '.join('data/' + f for f in art.files)}) could not be loaded "
                        f"({type(e).__name__}: {e}); rebuild it with `{art.command}`") from e


def build(name: str, config: Any = None, device: str = "cpu", progress: bool = True, **inputs: Any) -> Any:
    """Compute artifact ``name`` with ``config`` (default: the declared one, i.e. the shipped run); nothing is written.

    ``inputs`` go to the builder (e.g. ``models=`` for ``highway/eval``)."""
    art = get(name)
    return _resolve(art.build)(_check_config(art, config), device=device, progress=progress, **inputs)


def _staged_install(art: Artifact, payloads: list[bytes], data_dir: Path, metrics: list[dict]) -> list[Path]:
    """Write every payload to a temp file beside its target, then rename all and register them; on any error the old
    files and the manifest are untouched and no temp file is left."""
    from rlinterp.pipeline.manifest import register

    targets = [data_dir / f for f in art.files]
    tmps: list[Path] = []
    try:
        for t in targets:
            t.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=t.parent, prefix=f".{t.name}.", suffix=".tmp")
            os.close(fd)
            tmps.append(Path(tmp))
        for tmp, payload in zip(tmps, payloads):
            tmp.write_bytes(payload)
        umask = os.umask(0)
        os.umask(umask)
        for tmp, t in zip(tmps, targets):
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, t)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    for f, m in zip(art.files, metrics):
        register(f, art.command, m, data_dir)
    return targets


def save(name: str, obj: Any, config: Any, data_dir: Path | None = None) -> list[Path]:
    """Replace the files of ``name`` in ``data/`` by ``obj`` (built with ``config``) and register them.

    Metrics are measured first (:attr:`Artifact.metrics`), then the files are written atomically. Overwriting the
    shipped files with an object built from a config other than the declared one is refused (pass ``data_dir``)."""
    art = get(name)
    data_dir = Path(data_dir or DATA)
    _refuse_non_default(art, _check_config(art, config), data_dir)
    metrics = _resolve(art.metrics)(obj)
    return _staged_install(art, _dump(art, obj), data_dir, metrics)


def _refuse_non_default(art: Artifact, config: Any, data_dir: Path) -> None:
    if data_dir.resolve() == DATA.resolve() and (diff := _config_diff(art, config)):
        raise ValueError(f"refusing to overwrite the shipped {art.name}: it is declared with its default config and "
                         f"this one differs in {diff} (declared, given); keep it out of data/ (rebuild without "
                         f"--save, or save into another data_dir)")


def _dump(art: Artifact, obj: Any) -> list[bytes]:
    payloads = _resolve(art.dump)(obj)
    if len(payloads) != len(art.files):
        raise RuntimeError(f"{art.dump} returned {len(payloads)} payloads for the {len(art.files)} files of {art.name}")
    return payloads


def _shipped_metrics(art: Artifact, data_dir: Path) -> list[dict]:
    from rlinterp.pipeline.manifest import read_manifest

    manifest = read_manifest(data_dir)
    return [manifest.get(f, {}).get("metrics", {}) for f in art.files]


def rebuild(name: str, save: bool = False, device: str = "cpu", progress: bool = True, config: Any = None,
            data_dir: Path | None = None, out: Path | None = None, print_fn=print) -> dict[str, Any]:
    """Build artifact ``name`` (the declared config unless ``config`` overrides it) and measure it.

    Without ``save`` the files go under ``out`` (default ``runs/rebuild/<name>/``, git-ignored) and ``data/`` is
    not touched; with ``save`` they replace the shipped files atomically and are registered in the manifest with
    :attr:`Artifact.command` (a failed build leaves the shipped files as they were). The new metrics are printed
    next to the shipped ones. Returns ``{"paths": [...], "metrics": [...], "shipped": [...]}``."""
    art = get(name)
    config = _check_config(art, config)
    data_dir = Path(data_dir or DATA)
    if save:
        _refuse_non_default(art, config, data_dir)
    shipped = _shipped_metrics(art, data_dir)
    obj = _resolve(art.build)(config, device=device, progress=progress)
    metrics = _resolve(art.metrics)(obj)
    if save:
        paths = _staged_install(art, _dump(art, obj), data_dir, metrics)
    else:
        out = Path(out) if out else ROOT / "runs" / "rebuild" / name
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / Path(f).name for f in art.files]
        for path, payload in zip(paths, _dump(art, obj)):
            path.write_bytes(payload)
    for f, new, old, path in zip(art.files, metrics, shipped, paths):
        print_fn(f"{f} -> {path}")
        keys = list(dict.fromkeys([*old, *new]))
        width = max((len(k) for k in keys), default=0)
        print_fn(f"  {'metric':<{width}}  {'shipped':>14}  {'rebuilt':>14}")
        for k in keys:
            print_fn(f"  {k:<{width}}  {_fmt(old.get(k)):>14}  {_fmt(new.get(k)):>14}")
    return {"paths": paths, "metrics": metrics, "shipped": shipped}


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def verify(data_dir: Path | None = None) -> list[str]:
    """Every problem with ``data/``: files that fail their manifest check, files the manifest does not know,
    manifest entries no artifact declares, declared files missing from the manifest, stale rebuild commands."""
    from rlinterp.pipeline.manifest import read_manifest, unknown_files, verify_all

    data_dir = Path(data_dir or DATA)
    problems = verify_all(data_dir)
    problems += [f"data/{f} is not in data/MANIFEST.json (remove it, or declare it in rlinterp.artifacts and "
                 f"register it with `rli data rebuild NAME --save`)" for f in unknown_files(data_dir)]
    manifest = read_manifest(data_dir)
    for f, entry in manifest.items():
        art = owner(f)
        if art is None:
            problems.append(f"data/{f} is in the manifest but no artifact declares it (see rlinterp.artifacts)")
        elif entry.get("command") != art.command:
            problems.append(f"data/{f}: the manifest's rebuild command {entry.get('command')!r} is not "
                            f"{art.command!r}")
    for art in _all().values():
        for f in art.files:
            if f not in manifest:
                problems.append(f"data/{f} (artifact {art.name}) is not in data/MANIFEST.json; build and register it "
                                f"with `{art.command}`")
    return problems


def table(data_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per artifact: name, kind, files, total size in bytes (from the manifest), description."""
    from rlinterp.pipeline.manifest import read_manifest

    manifest = read_manifest(data_dir)
    return [dict(name=a.name, kind=a.kind, files=list(a.files), command=a.command, description=a.description,
                 size=sum(manifest.get(f, {}).get("size", 0) for f in a.files)) for a in _all().values()]


# ----------------------------------------------------------------------------------------------------------------
# Formats shared by several artifacts


def _torch_load(path: Path, device: str = "cpu") -> Any:
    import torch

    return torch.load(path, map_location=device, weights_only=True)


def _load_network(path: Path, build_network, device: str = "cpu"):
    """A hooked network from a checkpoint ``{"network_config", "state_dict", ...}``, in eval mode."""
    ck = _torch_load(path, device)
    model = build_network(ck["network_config"], device=device)
    model.load_state_dict(ck["state_dict"])
    return model.eval()


def load_torch(paths: list[Path], device: str = "cpu", data_dir: Path | None = None) -> Any:
    return _torch_load(paths[0], device)


def dump_torch(obj: Any) -> list[bytes]:
    from rlinterp.pipeline.manifest import checkpoint_bytes

    return [checkpoint_bytes(obj, "checkpoint")]


def dump_json(obj: Any) -> list[bytes]:
    return [json.dumps(obj, indent=1).encode()]


def load_json(paths: list[Path], device: str = "cpu", data_dir: Path | None = None) -> Any:
    return json.loads(Path(paths[0]).read_text())


# ----------------------------------------------------------------------------------------------------------------
# coinflip/dqn


def build_dqn(config, device: str = "cpu", progress: bool = True):
    """Train the coin-flip DQN; the model carries its training ``history``."""
    from rlinterp.learners import dqn

    model, history = dqn.train(config, device=device, progress=progress)
    model.history = history
    return model


def load_dqn(paths: list[Path], device: str = "cpu", data_dir: Path | None = None):
    from rlinterp.learners.dqn import DQNConfig
    from rlinterp.models.qnet import QNetwork

    ckpt = _torch_load(paths[0], str(device))
    model = QNetwork(DQNConfig.from_dict(ckpt["config"])).to(device)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    model.history = ckpt["history"]
    return model


def dump_dqn(model) -> list[bytes]:
    from rlinterp.pipeline.manifest import checkpoint_bytes

    obj = {"config": model.cfg.to_dict(), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "history": {k: list(v) for k, v in model.history.items()}}
    return [checkpoint_bytes(obj, "coinflip/dqn.pt")]


def metrics_dqn(model) -> list[dict]:
    """Exact and paired Monte-Carlo evaluation (200 000 games, seed 1: the chapter's defaults) + training time."""
    from rlinterp.studies.coinflip import evaluate

    m = evaluate(model)
    if model.history.get("wall_time"):
        m = {"train_wall_s": float(model.history["wall_time"][0]), **m}
    return [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in m.items()}]


# ----------------------------------------------------------------------------------------------------------------
# highway/ego_attention, highway/mlp


def build_ddqn(config, device: str = "cpu", progress: bool = True):
    """Train a highway Double DQN (one torch thread; resumable under ``runs/highway/``). The model carries its
    training ``curve`` (with ``wall_time_s_total`` and ``train_config``) and ``train_stats``."""
    import torch

    from rlinterp.learners import ddqn

    torch.set_num_threads(1)
    config = dataclasses.replace(config, device=device)
    c = config
    run_dir = ROOT / "runs" / "highway" / f"book_{c.network}_seed{c.seed}_ep{c.episodes}_envs{c.num_envs}"
    if c.env_overrides:  # another environment (e.g. a traffic density) is another run, never a resumed one
        run_dir = run_dir.with_name(run_dir.name + "".join(f"_{k}{v}" for k, v in sorted(c.env_overrides.items())))
    result = ddqn.train(config, run_dir=run_dir, progress=progress, log_every=0)
    model = result["model"].eval()
    model.curve = dict(result["curve"], wall_time_s_total=result["wall_time_s"], train_config=result["config"])
    model.train_stats = dict(env_steps=result["env_steps"], wall_time_s=result["wall_time_s"])
    return model


def load_ddqn(paths: list[Path], device: str = "cpu", data_dir: Path | None = None):
    from rlinterp.models.ego_attention import build_network

    model = _load_network(paths[0], build_network, device)
    model.curve = json.loads(Path(paths[1]).read_text())
    return model


def dump_ddqn(model) -> list[bytes]:
    from rlinterp.pipeline.manifest import checkpoint_bytes

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    train_config = model.curve["train_config"]
    ckpt = checkpoint_bytes(dict(state_dict=state, network_config=model.config, train_config=train_config),
                            f"highway/{model.config['kind']}.pt")
    curve = dict(model.curve, wall_time_s_total=round(model.curve["wall_time_s_total"], 1))
    return [ckpt, json.dumps(curve, separators=(",", ":")).encode()]


def metrics_ddqn(model) -> list[dict]:
    import numpy as np

    c = model.curve
    stats = getattr(model, "train_stats", {"env_steps": c["env_steps"][-1], "wall_time_s": c["wall_time_s_total"]})
    return [dict(episodes=len(c["return"]), env_steps=int(stats["env_steps"]),
                 wall_time_s=round(float(stats["wall_time_s"]), 1),
                 final_return100=round(float(np.mean(c["return"][-100:])), 4)),
            {"episodes": len(c["return"])}]


# ----------------------------------------------------------------------------------------------------------------
# highway/eval

HIGHWAY_AGENTS = {"ego_attention": "Ego-attention DQN", "mlp": "MLP DQN"}


def build_highway_eval(config: HighwayEval, device: str = "cpu", progress: bool = True, models: dict | None = None,
                       data_dir: Path | None = None, workers: int | None = None) -> dict:
    """Evaluate the greedy agents (``models``, default: the shipped ones) and the scripted policies on the same
    scenes (``config.seeds``) of the environment ``config.env_overrides`` (default: the agents' own), in ``workers``
    processes (default: one per core; the numbers do not depend on it).

    Returns ``{"n_episodes", "split", "seed" (the first), "checkpoints": {agent: sha256 of its shipped checkpoint},
    "results": {policy: studies.highway.evaluate_policies(...)[policy]}}`` plus ``"env_overrides"`` when they are
    not empty; every result keeps its per-episode returns and outcomes in seed order, so any two policies can be
    compared paired."""
    import hashlib

    from rlinterp.envs import highway as hw
    from rlinterp.learners.ddqn import greedy_policy
    from rlinterp.studies import highway as hws
    from rlinterp.pipeline.manifest import read_manifest

    models_are_shipped = models is None
    if models is None:
        models = {k: load(f"highway/{k}", device, data_dir) for k in HIGHWAY_AGENTS}
    policies = {HIGHWAY_AGENTS[k]: greedy_policy(models[k], device=device) for k in HIGHWAY_AGENTS}
    policies |= {f"Always {a}": hws.constant_policy(i) for i, a in enumerate(hw.ACTIONS)}
    policies["Random"] = hws.random_policy(config.random_seed)
    manifest = read_manifest(data_dir)
    checkpoints = {k: manifest.get(f"highway/{k}.pt", {}).get("sha256") for k in HIGHWAY_AGENTS}
    seeds = config.seeds
    workers = workers if workers is not None else (1 if device != "cpu" else os.cpu_count() or 1)
    # finished chunks are cached under runs/ (keyed by the checkpoints and the random policy's seed): a rebuild that
    # was interrupted resumes where it stopped (the highway-env version and the env config are in the key)
    from importlib.metadata import version

    env = config.env_overrides
    key = hashlib.sha256(json.dumps([checkpoints, config.random_seed, version("highway-env"), hw.env_config(**env)],
                                    sort_keys=True).encode()).hexdigest()[:16]
    cache = ROOT / "runs" / "highway" / f"eval_cache_{key}" if models_are_shipped else None
    results = hws.evaluate_policies(policies, seeds, workers=workers, progress=progress, cache_dir=cache, **env)
    out = dict(n_episodes=config.n_episodes, split=config.split, seed=int(seeds[0]), checkpoints=checkpoints,
               results=results)
    return dict(out, env_overrides=dict(env)) if env else out  # the shipped evaluation's format is unchanged


def load_highway_eval(paths: list[Path], device: str = "cpu", data_dir: Path | None = None) -> dict:
    """The stored evaluation, after checking it was computed with the shipped checkpoints."""
    from rlinterp.pipeline.manifest import read_manifest

    stored = json.loads(Path(paths[0]).read_text())
    manifest = read_manifest(data_dir)
    now = {k: manifest.get(f"highway/{k}.pt", {}).get("sha256") for k in HIGHWAY_AGENTS}
    if stored.get("checkpoints") != now:
        raise DataError(f"data/highway/eval.json was computed with other checkpoints than the shipped "
                        f"data/highway/*.pt; rebuild it with `{get('highway/eval').command}`")
    from rlinterp.studies.highway import EPISODE_FIELDS

    c = get("highway/eval").config
    if (stored.get("split"), stored.get("n_episodes")) != (c.split, c.n_episodes) or any(
            len(r.get(f, ())) != c.n_episodes for r in stored["results"].values() for f in EPISODE_FIELDS):
        raise DataError(f"data/highway/eval.json is not the declared evaluation ({c.n_episodes} {c.split} scenes "
                        f"per policy with per-episode outcomes; it has {stored.get('n_episodes')} "
                        f"{stored.get('split', 'old-protocol')} scenes); rebuild it with "
                        f"`{get('highway/eval').command}`")
    return stored


def metrics_highway_eval(stored: dict) -> list[dict]:
    return [{"n_episodes": stored["n_episodes"], "split": stored["split"],
             **{name: round(r["mean_return"], 3) for name, r in stored["results"].items()}}]


# ----------------------------------------------------------------------------------------------------------------
# ad/darkroom_ad, ad/darkroom_ed, ad/darkroom_ad_qlearning, ad/ablation

#: The evaluation behind the AD models' manifest metrics: held-out goals, sampling, the first ``n_seeds``
#: *validation* sampling seeds of ``rlinterp.seeds.split("ad")`` (metrics describe a checkpoint and may be used to
#: choose between rebuilds; the chapters report on test seeds).
AD_METRICS_EVAL = dict(n_episodes=20, n_seeds=5, temperature=1.0)


def build_darkroom(config: DarkroomFit, device: str = "cpu", progress: bool = True):
    """Train an AD/ED transformer; the model carries ``stride``, ``source`` and ``train_log``."""
    from rlinterp.envs.darkroom import darkroom_goal_split
    from rlinterp.learners.ad import fit_darkroom

    c = config
    train_goals = darkroom_goal_split(c.room_size, seed=0)[0]
    if c.n_train_goals is not None and c.n_train_goals > len(train_goals):
        raise ValueError(f"n_train_goals must lie in [1, {len(train_goals)}] in a {c.room_size}x{c.room_size} room, "
                         f"got {c.n_train_goals}")
    model, log = fit_darkroom(c.kind, train_goals[:c.n_train_goals], c.histories_per_goal, c.n_source_episodes,
                                  c.stride, c.n_steps, c.batch_size, lr=c.lr, seed=c.seed, device=device,
                                  progress=progress, source=c.source, size=c.room_size,
                                  n_ctx_episodes=c.n_ctx_episodes, d_model=c.d_model, n_layers=c.n_layers,
                                  d_mlp=c.d_mlp, cell_embedding=c.cell_embedding)
    return _ad_ready(model, log)


def _ad_ready(model, log: dict):
    model.stride = int(log["stride"])
    model.source = str(log.get("source", "q_learning"))  # the first AD models predate the PSRL source
    model.train_log = log
    return model.eval()


def load_darkroom(paths: list[Path], device: str = "cpu", data_dir: Path | None = None):
    from rlinterp.models.ad_transformer import ADTransformer

    ckpt = _torch_load(paths[0])
    return _ad_ready(ADTransformer.from_checkpoint(ckpt, device), ckpt["log"])


def dump_darkroom(model) -> list[bytes]:
    import numpy as np
    import torch

    from rlinterp.pipeline.manifest import checkpoint_bytes

    log = {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in model.train_log.items()}
    return [checkpoint_bytes(model.checkpoint(log=log), f"the {log.get('kind', 'ad')} model")]


def metrics_darkroom(model) -> list[dict]:
    """Return per in-context episode on the held-out goals of the model's room (:data:`AD_METRICS_EVAL`), oracle,
    training time."""
    import numpy as np

    from rlinterp.seeds import split
    from rlinterp.studies.ad import evaluate_darkroom, room_size
    from rlinterp.envs.darkroom import darkroom_goal_split, oracle_return

    e = AD_METRICS_EVAL
    size = room_size(model)
    _, test_goals = darkroom_goal_split(size, seed=0)
    oracle = float(oracle_return(test_goals, size).mean())
    m = evaluate_darkroom(model, test_goals, e["n_episodes"], split("ad").validation_seeds(e["n_seeds"]),
                          e["temperature"]).mean(0)
    hit = np.nonzero(m >= 0.8 * oracle)[0]
    return [{"return_ep1": float(m[0]), "return_ep10": float(m[min(10, len(m)) - 1]), "return_last": float(m[-1]),
             "oracle": oracle, "episodes_to_80pct": int(hit[0]) + 1 if len(hit) else -1,
             "wall_s": float(model.train_log["wall_s"])}]


def build_ablation(config: AblationGrid, device: str = "cpu", progress: bool = True) -> dict:
    """Train and evaluate every (width, number of goals, seed) variant.

    Returns ``{"variants": [row per variant], "curves": tensor (variants, rollouts, episodes) of held-out returns,
    "n_steps"}``."""
    import numpy as np
    import torch
    from rlinterp.progress import tqdm

    from rlinterp.seeds import split
    from rlinterp.studies.ad import evaluate_darkroom
    from rlinterp.envs import darkroom as dr

    c = config
    test_seeds = split("ad").test_seeds(c.n_eval_seeds)  # the curves are reported (chapter 1's ablation)
    train_goals, test_goals = dr.darkroom_goal_split(c.room_size, seed=0)
    for n in c.goals:  # before any training
        if not 1 <= n <= len(train_goals):
            raise ValueError(f"ablation goal counts must lie in [1, {len(train_goals)}] in a {c.room_size}x"
                             f"{c.room_size} room, got {n}")
    variants, curves = [], []
    bar = tqdm(total=len(c.d_models) * len(c.goals) * c.seeds, desc="ablation", disable=not progress)
    for w in c.d_models:
        for n in c.goals:
            per_goal = max(1, c.histories_per_goal * len(train_goals) // n)  # same amount of data for every n
            for rep in range(c.seeds):
                fit = DarkroomFit(kind="ad", source="psrl", n_train_goals=n, histories_per_goal=per_goal,
                                  n_source_episodes=c.n_source_episodes, stride=1, n_steps=c.n_steps,
                                  batch_size=c.batch_size, seed=c.seed + rep, n_ctx_episodes=c.n_ctx_episodes,
                                  d_model=w, n_layers=2 if w < 64 else 3, d_mlp=4 * w, cell_embedding=False,
                                  room_size=c.room_size)
                m_ = build_darkroom(fit, device=device, progress=False)
                curves.append(evaluate_darkroom(m_, test_goals, c.n_eval_episodes, test_seeds, 1.0))
                tr_curve = evaluate_darkroom(m_, train_goals[:n], c.n_eval_episodes, test_seeds[:1], 1.0)
                tr_oracle = dr.oracle_return(train_goals[:n], c.room_size).mean()
                variants.append({"d_model": w, "n_layers": fit.n_layers, "seed": fit.seed,
                                 "parameters": sum(p.numel() for p in m_.parameters()), "train goals": n,
                                 "train return (last 5)": float(tr_curve[:, -5:].mean() / tr_oracle),
                                 "train minutes": float(m_.train_log["wall_s"]) / 60,
                                 "final loss": float(m_.train_log["loss"][-100:].mean())})
                bar.update(1)
    bar.close()
    return {"variants": variants, "curves": torch.as_tensor(np.stack(curves)), "n_steps": c.n_steps}


def metrics_ablation(ablation: dict) -> list[dict]:
    return [{"n_variants": len(ablation["variants"])}]


# ----------------------------------------------------------------------------------------------------------------
# heist/impala


def build_heist(config: HeistAgentFit, device: str = "cpu", progress: bool = True):
    """DAgger then PPO (both resumable under ``runs/heist/``, two torch threads). The model carries ``imitation`` (the
    network after DAgger, before PPO) and ``curve``: the PPO
    curve (``rlinterp.learners.ppo.CURVE_KEYS``), ``dagger`` (one row per DAgger round), ``wall_time_s_total``
    (both phases) and ``train_config`` (``{"dagger": ..., "ppo": ...}``)."""
    import torch

    from rlinterp.learners import dagger, ppo

    torch.set_num_threads(2)
    d, p = dataclasses.replace(config.dagger, device=device), config.ppo
    tag = f"book_{d.network}_seed{d.seed}"
    d_dir = ROOT / "runs" / "heist" / f"{tag}_dagger{d.iterations}"
    d_res = dagger.train(d, run_dir=d_dir, progress=progress)
    p = dataclasses.replace(p, device=device, init=str(d_dir))
    p_res = ppo.train(p, run_dir=ROOT / "runs" / "heist" / f"{tag}_ppo{p.total_steps}", progress=progress,
                      log_every=0)
    model = p_res["model"].eval()
    cfg_ppo = dict(p_res["config"], init="")  # the local run path is not part of the recipe
    # the DAgger network before PPO (a baseline of the agent chapter); a plain attribute, not a submodule, so it
    # stays out of the agent's state_dict, parameters and hooks
    object.__setattr__(model, "imitation", d_res["model"].eval())
    model.curve = dict(p_res["curve"], dagger=d_res["curve"],
                       wall_time_s_total=d_res["wall_time_s"] + p_res["wall_time_s"],
                       wall_time_s_dagger=d_res["wall_time_s"], train_config=dict(dagger=d_res["config"], ppo=cfg_ppo))
    return model


def load_heist(paths: list[Path], device: str = "cpu", data_dir: Path | None = None):
    from rlinterp.models.impala import build_network

    model = _load_network(paths[0], build_network, device)
    model.curve = json.loads(Path(paths[1]).read_text())
    object.__setattr__(model, "imitation", _load_network(paths[2], build_network, device))  # not a submodule
    return model


def dump_heist(model) -> list[bytes]:
    from rlinterp.pipeline.manifest import checkpoint_bytes

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = checkpoint_bytes(dict(state_dict=state, network_config=model.config,
                                 train_config=model.curve["train_config"]), f"heist/{model.config['kind']}.pt")
    curve = dict(model.curve, wall_time_s_total=round(model.curve["wall_time_s_total"], 1))
    im = model.imitation
    im_ckpt = checkpoint_bytes(dict(state_dict={k: v.detach().cpu() for k, v in im.state_dict().items()},
                                    network_config=im.config, train_config=model.curve["train_config"]["dagger"]),
                               f"heist/{im.config['kind']}_dagger.pt")
    return [ckpt, json.dumps(curve, separators=(",", ":")).encode(), im_ckpt]


def metrics_heist(model) -> list[dict]:
    """Training cost and the last tenth of the PPO curve (the chapter evaluates on validation and test levels)."""
    import numpy as np

    c = model.curve
    tail = max(1, len(c["success"]) // 10)
    succ = [x for x in c["success"][-tail:] if x == x]
    return [dict(updates=len(c["success"]), env_steps=int(c["env_steps"][-1]) if c["env_steps"] else 0,
                 dagger_rounds=len(c["dagger"]), wall_time_s=round(float(c["wall_time_s_total"]), 1),
                 final_train_success=round(float(np.mean(succ)), 4) if succ else None),
            {"updates": len(c["success"])},
            dict(rounds=len(c["dagger"]), last_round_accuracy=round(float(c["dagger"][-1]["accuracy"]), 4))]


def build_heist_scratch(config, device: str = "cpu", progress: bool = True) -> dict:
    """PPO from a random initialisation (resumable under ``runs/heist/``): its curve, config and wall time."""
    import torch

    from rlinterp.learners import ppo

    torch.set_num_threads(2)
    config = dataclasses.replace(config, device=device)
    res = ppo.train(config, run_dir=ROOT / "runs" / "heist" / f"book_scratch_{config.network}_seed{config.seed}",
                    progress=progress, log_every=0)
    return dict(curve=res["curve"], config=res["config"], wall_time_s=round(res["wall_time_s"], 1))


def metrics_heist_scratch(obj: dict) -> list[dict]:
    import numpy as np

    succ = [x for x in obj["curve"]["success"][-10:] if x == x]
    return [dict(updates=len(obj["curve"]["success"]), env_steps=int(obj["curve"]["env_steps"][-1]),
                 last10_train_success=round(float(np.mean(succ)), 4))]
