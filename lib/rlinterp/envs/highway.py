"""``intersection-v0`` from highway-env, configured as rl-agents configures it for the ego-attention paper.

Leurent & Mercat (2019), "Social Attention for Autonomous Decision-Making in Dense Traffic" (arXiv 1911.12250),
train a DQN on highway-env's intersection task with the configuration of eleurent/rl-agents
``scripts/configs/IntersectionEnv/env.json``. That file only overrides the observation (``absolute: true``,
``order: "shuffled"``) and the destination (``"o1"``, the left turn); everything else is the highway-env default for
``intersection-v0`` (checked against highway-env 1.12.1, ``highway_env/envs/intersection_env.py``):

* observation ``Kinematics``: ``(15, 7)`` float32, one row per vehicle, row 0 is the ego vehicle, features
  ``[presence, x, y, vx, vy, cos_h, sin_h]``; positions/velocities are absolute (world frame), normalised by
  ``features_range`` (x, y in [-100, 100] m, vx, vy in [-20, 20] m/s) and clipped to [-1, 1]; the 14 other rows
  are shuffled every step (so the network cannot rely on an order) and absent vehicles are all-zero rows
  (presence 0).
* action ``DiscreteMetaAction`` longitudinal only: 0 SLOWER, 1 IDLE, 2 FASTER (target speeds 0, 4.5, 9 m/s).
* reward per step: -5 on collision, else ``clip(lmap(speed, [7, 9], [0, 1]))``; arriving replaces it by 1; times
  ``on_road``. Episodes end on collision or arrival (terminated) or after 13 s = 13 agent steps (truncated).

The environment is headless: ``render_mode=None`` never opens a window and ``render_mode="rgb_array"`` renders
off-screen (SDL's ``offscreen`` video driver; ``dummy`` would give black frames, see :func:`_headless`).

By default the environment is :class:`FastIntersectionEnv`, a subclass that computes exactly the same episodes
(observations bit for bit, rewards, ends, every vehicle's lane and position; ``tests/test_highway.py`` compares it
with highway-env's class step by step) about 2.4 times faster in CPU time: the closest-lane search is pruned by
exact lower bounds, conflict checks predict each trajectory once, and the Kinematics observation is built without
pandas. ``make_env(..., fast=False)`` gives highway-env's own class.

This module holds the environment only (configuration, :func:`make_env`, observation helpers); policies, episodes
and evaluation are in :mod:`rlinterp.studies.highway`, drawing in :mod:`rlinterp.studies.highway_plots`.
"""
from __future__ import annotations

import copy
import os
from typing import Any


def _headless() -> None:
    """Headless pygame. highway-env 1.12.1 disables drawing altogether (black frames) when SDL_VIDEODRIVER is
    "dummy", so we use SDL's "offscreen" video driver instead, which needs no display and draws normally."""
    if os.environ.get("SDL_VIDEODRIVER", "dummy") == "dummy":
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


_headless()
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym  # noqa: E402
import highway_env  # noqa: E402,F401  (registers the highway-env ids)
import numpy as np  # noqa: E402

ENV_ID = "intersection-v0"
ACTIONS: tuple[str, ...] = ("SLOWER", "IDLE", "FASTER")
FEATURES: tuple[str, ...] = ("presence", "x", "y", "vx", "vy", "cos_h", "sin_h")
N_VEHICLES = 15
OBS_SHAPE = (N_VEHICLES, len(FEATURES))
FEATURES_RANGE = {"x": [-100, 100], "y": [-100, 100], "vx": [-20, 20], "vy": [-20, 20]}

#: rl-agents ``scripts/configs/IntersectionEnv/env.json`` (the keys it sets on top of highway-env's defaults).
RL_AGENTS_CONFIG: dict[str, Any] = {
    "observation": {
        "type": "Kinematics",
        "vehicles_count": N_VEHICLES,
        "features": list(FEATURES),
        "features_range": FEATURES_RANGE,
        "absolute": True,
        "order": "shuffled",
    },
    "destination": "o1",
}


def valid_config_keys() -> list[str]:
    """The top-level configuration keys ``intersection-v0`` understands (highway-env's ``default_config``)."""
    from highway_env.envs.intersection_env import IntersectionEnv

    return sorted(IntersectionEnv.default_config())


#: The traffic-density keys of ``intersection-v0`` (highway-env's own names): ``initial_vehicle_count`` vehicles are
#: placed at reset (one of them the "challenger" that drives straight across; fewer are placed when a spawn point is
#: within 15 m of a vehicle already there) and after every agent step a new vehicle enters with probability
#: ``spawn_probability`` (again only if no vehicle is within 15 m of its spawn point). highway-env's defaults, which
#: rl-agents and the shipped agents use, are 10 and 0.6; ``tests/test_highway.py`` checks them against highway-env.
DENSITY_DEFAULTS: dict[str, Any] = {"spawn_probability": 0.6, "initial_vehicle_count": 10}


def _check_density(overrides: dict[str, Any]) -> dict[str, Any]:
    """The density entries of ``overrides`` checked (type and range) and normalised (float / int)."""
    from rlinterp.validation import check_float, check_int

    out = {}
    if "spawn_probability" in overrides:
        out["spawn_probability"] = check_float("spawn_probability", overrides["spawn_probability"], 0.0, 1.0)
    if "initial_vehicle_count" in overrides:
        out["initial_vehicle_count"] = check_int("initial_vehicle_count", overrides["initial_vehicle_count"], 1)
    return out


def density(spawn_probability: float | None = None, initial_vehicle_count: int | None = None) -> dict[str, Any]:
    """The env overrides of a traffic density (checked: ``spawn_probability`` in [0, 1], ``initial_vehicle_count``
    an integer >= 1; None: highway-env's default), holding only the keys that differ from
    :data:`DENSITY_DEFAULTS`: the default traffic is ``{}``, the very configuration the shipped agents were trained
    and evaluated with. Pass the result as ``**overrides`` to :func:`make_env`, to ``HighwayEval(env_overrides=...)``
    or ``DDQNConfig(env_overrides=...)``."""
    given = {k: v for k, v in (("spawn_probability", spawn_probability),
                               ("initial_vehicle_count", initial_vehicle_count)) if v is not None}
    return {k: v for k, v in _check_density(given).items() if v != DENSITY_DEFAULTS[k]}


def density_of(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full traffic density (both :data:`DENSITY_DEFAULTS` keys) of env ``overrides``."""
    return {**DENSITY_DEFAULTS, **_check_density(dict(overrides or {}))}


def density_text(overrides: dict[str, Any] | None = None) -> str:
    """The density of env ``overrides`` in words, e.g. "spawn probability 0.6, 10 initial vehicles"."""
    d = density_of(overrides)
    return f"spawn probability {d['spawn_probability']:g}, {d['initial_vehicle_count']} initial vehicles"


def env_config(**overrides: Any) -> dict[str, Any]:
    """The rl-agents configuration with ``overrides`` (top-level highway-env config keys) applied.

    Raises ValueError for an unknown key, naming the valid ones, and for a density value out of range
    (:func:`density`).
    """
    valid = valid_config_keys()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown intersection-v0 config key(s) {unknown}; valid keys are: {', '.join(valid)}")
    overrides = {**overrides, **_check_density(overrides)}
    config = copy.deepcopy(RL_AGENTS_CONFIG)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **copy.deepcopy(value)}
        else:
            config[key] = copy.deepcopy(value)
    return config


# --------------------------------------------------------------------------------------------------------------------
# The same environment, computed faster (identical trajectories; tests/test_highway.py compares them step by step)
# --------------------------------------------------------------------------------------------------------------------
from highway_env.envs.common.observation import KinematicObservation  # noqa: E402
from highway_env.envs.intersection_env import IntersectionEnv  # noqa: E402
from highway_env.road.lane import CircularLane, StraightLane  # noqa: E402
from highway_env.road.regulation import RegulatedRoad  # noqa: E402
from highway_env.road.road import RoadNetwork  # noqa: E402
from highway_env.utils import lmap as utils_lmap  # noqa: E402


class _FastRoadNetwork(RoadNetwork):
    """``get_closest_lane_index`` computed exactly, on fewer lanes.

    highway-env computes ``lane.distance_with_heading`` for every lane of the network (20 at the intersection) for
    every vehicle at every simulation step, a third of the simulation's time. That distance is
    ``|lateral| + longitudinal overshoot + |angle|`` in the lane's coordinates, which is never less than the Euclidean
    distance from the position to the lane's centre line (a segment or a circle), hence never less than the distance
    to that line's bounding box. So the lanes are visited in order of that lower bound and the search stops once the
    bound exceeds the best distance found (less a 1e-6 m margin for rounding); the distances that are computed are
    highway-env's own, and ties go to the first lane in graph order as ``np.argmin`` does. The result is the same
    lane index, bit for bit. The lane boxes are computed once per road (``add_lane`` invalidates them)."""

    def add_lane(self, _from: str, _to: str, lane) -> None:
        self._boxes = None  # the lane boxes are computed again on the next query
        super().add_lane(_from, _to, lane)

    def _lane_boxes(self):
        if getattr(self, "_boxes", None) is not None:
            return self._boxes
        lanes = [((f, t, i), lane) for f, to in self.graph.items() for t, ls in to.items() for i, lane in enumerate(ls)]
        lo, hi = np.full((len(lanes), 2), -np.inf), np.full((len(lanes), 2), np.inf)
        for j, (_, lane) in enumerate(lanes):
            if type(lane) is StraightLane:
                lo[j], hi[j] = np.minimum(lane.start, lane.end), np.maximum(lane.start, lane.end)
            elif type(lane) is CircularLane:  # the whole circle's box (the lateral distance is to the full circle)
                lo[j], hi[j] = lane.center - lane.radius, lane.center + lane.radius
            # other lane types: an infinite box, the lane is always measured
        self._boxes = ([k for k, _ in lanes], [lane for _, lane in lanes], lo, hi)
        return self._boxes

    def get_closest_lane_index(self, position: np.ndarray, heading: float | None = None):
        keys, lanes, lo, hi = self._lane_boxes()
        p = np.asarray(position, dtype=float)
        bound = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=1)
        best, best_j = np.inf, -1
        for j in np.argsort(bound, kind="stable"):
            if bound[j] - 1e-6 > best:
                break
            d = lanes[j].distance_with_heading(position, heading)
            if d < best or (d == best and j < best_j):
                best, best_j = d, j
        if best_j < 0:  # every distance was nan: highway-env's argmin would pick the first lane
            return RoadNetwork.get_closest_lane_index(self, position, heading)
        return keys[best_j]


class _FastRegulatedRoad(RegulatedRoad):
    """``enforce_road_rules`` with each vehicle's predicted trajectory computed once per call.

    highway-env checks every pair of vehicles for a possible conflict and predicts both vehicles' trajectories for
    every pair, so each trajectory is computed n - 1 times (a third of the simulation's time). Nothing the check
    changes (target speeds, colours, yield flags) enters a prediction, so during one call each vehicle's
    ``predict_trajectory_constant_speed`` is shadowed by a memo of itself: the same predictions, computed once."""

    def enforce_road_rules(self) -> None:
        shadowed = []
        for v in self.vehicles:
            fn = getattr(v, "predict_trajectory_constant_speed", None)
            if fn is not None and "predict_trajectory_constant_speed" not in vars(v):
                memo: dict[bytes, Any] = {}

                def once(times, fn=fn, memo=memo):
                    key = np.asarray(times).tobytes()
                    if key not in memo:
                        memo[key] = fn(times)
                    return memo[key]

                v.predict_trajectory_constant_speed = once
                shadowed.append(v)
        try:
            super().enforce_road_rules()
        finally:
            for v in shadowed:
                del v.predict_trajectory_constant_speed


class _FastKinematicObservation(KinematicObservation):
    """highway-env's Kinematics observation without pandas (which takes ~14 ms of a ~90 ms agent step): the same
    rows, the same normalisation arithmetic, the same zero rows and the same shuffle draw from the environment's
    generator. Configurations it does not cover (relative coordinates, features other than those below, no
    ``features_range``) fall back to highway-env's own ``observe``."""

    _COVERED = {"presence", "x", "y", "vx", "vy", "heading", "cos_h", "sin_h"}

    @staticmethod
    def _row(v, features) -> list[float]:
        vel, direction = v.velocity, v.direction
        values = {"presence": 1, "x": v.position[0], "y": v.position[1], "vx": vel[0], "vy": vel[1],
                  "heading": v.heading, "cos_h": direction[0], "sin_h": direction[1]}
        return [values[f] for f in features]

    def observe(self) -> np.ndarray:
        if (not self.env.road or not self.absolute or not self.features_range or not self.normalize
                or not set(self.features) <= self._COVERED):
            return super().observe()
        close = self.env.road.close_objects_to(self.observer_vehicle, self.env.PERCEPTION_DISTANCE,
                                               count=self.vehicles_count - 1, see_behind=self.see_behind,
                                               sort=self.order == "sorted", vehicles_only=not self.include_obstacles)
        vehicles = [self.observer_vehicle] + (close[-self.vehicles_count + 1:] if close else [])
        obs = np.array([self._row(v, self.features) for v in vehicles], dtype=np.float64)
        for feature, f_range in self.features_range.items():
            if feature in self.features:
                col = self.features.index(feature)
                obs[:, col] = utils_lmap(obs[:, col], [f_range[0], f_range[1]], [-1, 1])
                if self.clip:
                    obs[:, col] = np.clip(obs[:, col], -1, 1)
        if len(obs) < self.vehicles_count:
            obs = np.concatenate([obs, np.zeros((self.vehicles_count - len(obs), len(self.features)))])
        if self.order == "shuffled":
            self.env.np_random.shuffle(obs[1:])
        return obs.astype(self.space().dtype)



class FastIntersectionEnv(IntersectionEnv):
    """``intersection-v0`` with :class:`_FastRoadNetwork`, :class:`_FastRegulatedRoad` and
    :class:`_FastKinematicObservation` swapped in: the same dynamics, observations, rewards and random draws (so the
    same episodes for the same seed and actions), about 2.4 times faster in CPU time. Registered as ``FAST_ENV_ID``;
    :func:`make_env` and :func:`gym_make` use it unless ``fast=False``."""

    def _make_road(self) -> None:
        super()._make_road()
        self.road.network.__class__ = _FastRoadNetwork  # built by highway-env; lanes added later invalidate the boxes
        self.road.network._boxes = None
        if type(self.road) is RegulatedRoad:
            self.road.__class__ = _FastRegulatedRoad

    def define_spaces(self) -> None:
        super().define_spaces()
        if type(self.observation_type) is KinematicObservation:
            self.observation_type.__class__ = _FastKinematicObservation


FAST_ENV_ID = "rlinterp/intersection-v0"
if FAST_ENV_ID not in gym.registry:
    gym.register(id=FAST_ENV_ID, entry_point=f"{__name__}:FastIntersectionEnv")


def gym_make(config: dict[str, Any], render_mode: str | None = None, fast: bool = True) -> gym.Env:
    """``gym.make("intersection-v0", ...)`` (``fast``: its faster, identical twin :class:`FastIntersectionEnv`)
    without gymnasium's "v0 is out of date" warning: we keep v0 on purpose, it is the version the paper and rl-agents
    used (v2 changes which lanes count as neighbours)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        return gym.make(FAST_ENV_ID if fast else ENV_ID, config=config, render_mode=render_mode)


def make_env(seed: int | None = 0, render_mode: str | None = None, fast: bool = True, **overrides: Any) -> gym.Env:
    """``intersection-v0`` configured as in rl-agents, reset once with ``seed`` so it is ready to step.

    Args:
        seed: seeds the environment's generator (traffic spawning, the shuffling of the observation rows) and the
            action space; later ``reset()`` calls without a seed continue that generator deterministically.
        render_mode: None (no rendering) or "rgb_array" (``env.render()`` returns an (H, W, 3) uint8 frame).
        fast: the faster twin with identical episodes (:class:`FastIntersectionEnv`); False: highway-env's class.
        **overrides: top-level highway-env config keys, e.g. ``duration=5`` (dicts are merged one level deep).
    """
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array' (headless), got {render_mode!r}")
    config = env_config(**overrides)
    if render_mode is not None:
        _headless()
    env = gym_make(config, render_mode, fast=fast)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def ego_speed(env: gym.Env) -> float:
    """The ego vehicle's current speed in m/s."""
    return float(env.unwrapped.vehicle.speed)


def has_arrived(env: gym.Env) -> bool:
    """Whether the ego vehicle reached its destination (exited the intersection on the o1 branch)."""
    u = env.unwrapped
    return bool(u.has_arrived(u.vehicle))


def obs_positions(obs: np.ndarray) -> np.ndarray:
    """World (x, y) positions in metres of the observed vehicles, ``(15, 2)`` (meaningful where presence is 1)."""
    lo, hi = np.array([FEATURES_RANGE["x"][0], FEATURES_RANGE["y"][0]]), np.array([FEATURES_RANGE["x"][1],
                                                                                 FEATURES_RANGE["y"][1]])
    return lo + (obs[:, 1:3] + 1) / 2 * (hi - lo)




# --------------------------------------------------------------------------------------------------------------------
# Figures: a rendered scene with the ego vehicle's attention drawn on it, and the action bars
# --------------------------------------------------------------------------------------------------------------------
