"""Resident Ray actors: each builds its model once, then takes one unit at a time from the driver.

This is the pattern of Ray's `ActorPool` (idle actors take the next item), kept in the
driver's own `ray.wait` loop because `ActorPool` does not say which item a dead actor held,
and the batch report must. Ray restarts a killed actor (`max_restarts`, which builds the model
again) and retries the call it was running (`max_task_retries`); only when those run out does
a call fail, and that actor leaves the pool.

Ray is imported inside: `import cosmos_sim.batch` works without the `ray` extra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class Resident:
    """The actor body: `factory()` once (the model load), then `work(*args)` per call."""

    def __init__(self, factory: Callable[[], Callable[..., Any]]) -> None:
        started = time.perf_counter()
        self.work = factory()
        self.load_s = time.perf_counter() - started
        self.busy_s = 0.0
        self.calls = 0

    def run(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.work(*args)
        finally:
            self.busy_s += time.perf_counter() - started
            self.calls += 1

    def stats(self) -> dict[str, Any]:
        """Load time, busy time and calls since this process started (a restart resets them)."""
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "gpu_ids": ray.get_runtime_context().get_accelerator_ids().get("GPU", []),
            "load_s": self.load_s,
            "busy_s": self.busy_s,
            "calls": self.calls,
        }


class ResidentWorkers:
    """`count` resident actors; `submit` hands an item to an idle one, `release` takes it back."""

    def __init__(
        self,
        factory: Callable[[], Callable[..., Any]],
        *,
        count: int,
        num_gpus: float = 0.0,
        num_cpus: float = 0.0,
        max_restarts: int = 2,
    ) -> None:
        import ray

        actor = ray.remote(Resident).options(
            num_gpus=num_gpus,
            num_cpus=num_cpus,
            max_restarts=max_restarts,
            max_task_retries=max_restarts,
        )
        self.actors = [actor.remote(factory) for _ in range(count)]
        self.idle = list(self.actors)
        self.running: dict[Any, Any] = {}
        """ObjectRef of a call -> the actor running it."""

    @property
    def alive(self) -> int:
        return len(self.idle) + len(self.running)

    def submit(self, *args: Any) -> Any:
        """Start `work(*args)` on an idle actor; returns the call's ObjectRef."""
        actor = self.idle.pop(0)
        ref = actor.run.remote(*args)
        self.running[ref] = actor
        return ref

    def release(self, ref: Any) -> Any:
        """The finished call's result; its actor goes back to the idle list unless it died."""
        import ray

        actor = self.running.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError:
            self.actors.remove(actor)  # restarts used up: Ray will not bring it back
            raise
        except Exception:
            self.idle.append(actor)  # the item failed, the actor and its model are fine
            raise
        self.idle.append(actor)
        return result

    def map_unordered(self, items: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        """Every item through the actors, results in completion order (as ActorPool does)."""
        import ray

        queue = list(items)
        while queue or self.running:
            while queue and self.idle:
                self.submit(*queue.pop(0))
            if not self.running:
                raise RuntimeError(f"every resident worker died; {len(queue)} items not run")
            [ref], _ = ray.wait(list(self.running), num_returns=1)
            yield self.release(ref)

    def stats(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([a.stats.remote() for a in self.actors])

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors, self.idle, self.running = [], [], {}
