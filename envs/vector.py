"""A native `gymnasium.vector.VectorEnv` over a world model: one batched call per step.

All sub-envs are lanes of one `WorldState` on the model's device; `step` makes exactly one
`model.step` call for all of them (no Python loop over envs) and at most one `model.start`
call for the lanes that autoreset. Autoreset follows Gymnasium 1.x (`AutoresetMode`):

- NEXT_STEP (default): a lane that ended is restarted on the *next* `step`, whose action
  for it is ignored; that step returns its first observation, reward 0, no termination.
  The batch keeps its size: the ended lane is stepped with the others and its result
  discarded, so the model always sees the same batch shape (CUDA graphs and compiled
  models stay valid).
- SAME_STEP: ended lanes restart in the same step; `info["final_obs"]` / `"final_info"`
  carry what they ended on.
- DISABLED: lanes never restart by themselves; `reset(options={"reset_mask": mask})`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from cosmos_sim.envs.learned import CoreBacked, LearnedCore, LearnedEnv, to_numpy
from cosmos_sim.envs.world_model import WorldModel, WorldModelError


class LearnedVectorEnv(CoreBacked, VectorEnv):
    """`num_envs` lanes of a world model stepped together; spaces are the single env's, batched.

    Takes the same keyword arguments as `LearnedEnv`, plus `num_envs` and `autoreset_mode`.
    Observations are numpy uint8 [num_envs, H, W, 3]; `info["success"]` is a bool array.
    """

    def __init__(
        self,
        model: WorldModel | None = None,
        num_envs: int = 1,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        render_fps: float = 10,
        **settings: Any,
    ) -> None:
        """`settings` are LearnedEnv's keyword arguments (start frames, spaces, reward_fn...)."""
        if not isinstance(num_envs, int) or num_envs < 1:
            raise WorldModelError(f"num_envs must be an int >= 1, got {num_envs!r}")
        core = LearnedEnv(model, **settings).core.spawn(num_envs)
        self._setup(core, autoreset_mode, render_mode, render_fps)

    @classmethod
    def from_core(
        cls,
        core: LearnedCore,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        render_fps: float = 10,
    ) -> LearnedVectorEnv:
        """A vector env around an existing engine (how `branch` builds its futures)."""
        env = cls.__new__(cls)
        env._setup(core, autoreset_mode, render_mode, render_fps)
        return env

    def _setup(
        self,
        core: LearnedCore,
        autoreset_mode: AutoresetMode | str,
        render_mode: str | None,
        render_fps: float,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise WorldModelError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.core = core
        self.num_envs = core.num_lanes
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.render_mode = render_mode
        self.metadata = {
            "autoreset_mode": self.autoreset_mode,
            "render_modes": ["rgb_array"],
            "render_fps": render_fps,
        }
        self.single_observation_space = core.observation_space
        self.single_action_space = core.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._autoreset = np.zeros(self.num_envs, bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Restart all lanes (or `options["reset_mask"]`'s), from `options["frames"]`, the
        branch point, or the start frames. `seed` is one int for the whole batch."""
        if seed is not None and not isinstance(seed, int | np.integer):
            raise WorldModelError(
                f"seed must be one int for the whole batch (lanes draw from one generator), "
                f"got {type(seed).__name__}"
            )
        super().reset(seed=seed)
        self.core.require_model()
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, bool)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise WorldModelError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) "
                    f"with at least one True, got {mask.dtype} {list(mask.shape)}"
                )
            if self.core.state is None and not mask.all():
                raise WorldModelError("the first reset must restart every lane (no reset_mask)")
        self._seed_core(seed)
        self.core.reset_lanes(mask, self.np_random, options)
        self._autoreset[mask] = False
        return self.core.observations(), {
            "success": np.zeros(self.num_envs, bool),
            "_success": mask.copy(),
        }

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        folded = self.core.step(self.core.to_model_actions(actions, batched=True))
        obs = to_numpy(folded.obs)
        reward = to_numpy(folded.reward.double())
        terminated = to_numpy(folded.terminated)
        truncated = self.core.truncated()
        success = to_numpy(folded.success)
        info: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            restart = self._autoreset
            if restart.any():
                self.core.reset_lanes(restart, self.np_random)
                obs[restart] = self.core.observations()[restart]
                reward[restart] = 0.0
                terminated[restart] = truncated[restart] = success[restart] = False
            self._autoreset = terminated | truncated
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            ended = terminated | truncated
            if ended.any():
                final_obs = np.empty(self.num_envs, dtype=object)
                for lane in np.flatnonzero(ended):  # info only; the model call is batched
                    final_obs[lane] = obs[lane].copy()
                info["final_obs"], info["_final_obs"] = final_obs, ended
                info["final_info"] = {"success": success.copy(), "_success": ended.copy()}
                info["_final_info"] = ended
                self.core.reset_lanes(ended, self.np_random)
                obs[ended] = self.core.observations()[ended]
                success = np.where(ended, False, success)
        info["success"], info["_success"] = success, np.ones(self.num_envs, bool)
        return obs, reward, terminated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        frames = self._render_frames()
        return None if frames is None else tuple(frames)

    def branch(
        self, n: int, seed: int | None = None, lane: int = 0
    ) -> tuple[LearnedVectorEnv, np.ndarray, dict[str, Any]]:
        """(futures, obs, info): `n` futures from lane `lane`'s current state (see
        `cosmos_sim.envs.multiverse.branch`)."""
        from cosmos_sim.envs.multiverse import branch

        return branch(self, n, seed=seed, lane=lane)


def make_learned_vector_env(
    model: WorldModel | None = None, num_envs: int = 1, **kwargs: Any
) -> LearnedVectorEnv:
    """`gymnasium.make_vec("cosmos_sim/Learned-v0", num_envs, vectorization_mode=
    "vector_entry_point", model=...)`."""
    if model is None and kwargs.get("frame_shape") is None:
        raise WorldModelError(
            'gymnasium.make_vec("cosmos_sim/Learned-v0") needs model=... (any object '
            "implementing cosmos_sim.envs.world_model.WorldModel)"
        )
    return LearnedVectorEnv(model, num_envs, **kwargs)


def core_of(env: Any) -> LearnedCore:
    """The engine of a LearnedEnv / LearnedVectorEnv, through any wrappers."""
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, LearnedCore):
        raise WorldModelError(
            f"expected a LearnedEnv or LearnedVectorEnv (possibly wrapped), got "
            f"{type(getattr(env, 'unwrapped', env)).__name__}"
        )
    return core


def spawn_core(env: Any, num_envs: int) -> LearnedCore:
    """A `num_envs`-lane engine like `env`'s. Its step limit is the tighter of the learned
    env's own (`max_episode_steps=` when it was built) and the one `gymnasium.make(...,
    max_episode_steps=N)` records in the public `env.spec` (a TimeLimit wrapper added by
    hand, outside `gymnasium.make`, is not seen: pass the limit to the env instead)."""
    core = core_of(env).spawn(num_envs)
    limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
    if limit is not None and (core.max_episode_steps is None or limit < core.max_episode_steps):
        core.max_episode_steps = int(limit)
    return core


def vectorize(
    env: Any,
    num_envs: int,
    *,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
) -> LearnedVectorEnv:
    """A LearnedVectorEnv of `num_envs` lanes with the model and settings of a LearnedEnv."""
    if not isinstance(num_envs, int) or num_envs < 1:
        raise WorldModelError(f"num_envs must be an int >= 1, got {num_envs!r}")
    return LearnedVectorEnv.from_core(
        spawn_core(env, num_envs),
        autoreset_mode=autoreset_mode,
        render_mode=getattr(env, "render_mode", None),
        render_fps=getattr(env, "metadata", {}).get("render_fps", 10),
    )


def make_learned_pushcube_vector(
    num_envs: int = 1,
    *,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    **kwargs: Any,
) -> LearnedVectorEnv:
    """`gymnasium.make_vec("cosmos_sim/LearnedPushCube-v0", num_envs, vectorization_mode=
    "vector_entry_point")`: the shipped embedded model, all lanes in one batched call."""
    from cosmos_sim.envs.embedded import make_learned_pushcube

    return vectorize(make_learned_pushcube(**kwargs), num_envs, autoreset_mode=autoreset_mode)
