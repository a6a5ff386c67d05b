"""Environments. Importing this package registers the gymnasium ids (``rlinterp/CoinFlip-v0``, ...)."""
from gymnasium.envs.registration import register, registry

import rlinterp.envs.darkroom  # noqa: F401  (registers rlinterp/DarkRoom-v0)
import rlinterp.envs.heist  # noqa: F401  (registers rlinterp/Heist-v0)
from rlinterp.envs.coinflip import BatchedCoinFlip, CoinFlipEnv, CoinPrior, canonicalize, encode_obs

if "rlinterp/CoinFlip-v0" not in registry:
    register(id="rlinterp/CoinFlip-v0", entry_point="rlinterp.envs.coinflip:CoinFlipEnv")

__all__ = ["BatchedCoinFlip", "CoinFlipEnv", "CoinPrior", "canonicalize", "encode_obs"]
