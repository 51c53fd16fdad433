"""A batch plan: which episodes to capture and which stages to run on them, checked up front.

A plan is a YAML (or JSON) file. Every field is validated before Ray starts or a file is
written; a bad one raises `PlanError` naming the field (`captures[1].seconds`), the value and
the fix. Relative paths (CARLA rigs and replays, prompt files, OpenDRIVE maps) resolve from
the plan's own folder. See `examples/plans/demo.yaml`.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cosmos_sim.types import SpecError

UNIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$"
"""Capture names become folder names: letters, digits, `_`, `-`."""

GPU_BACKENDS = ("diffusers", "cosmos-cli")
"""Transfer backends that hold a model on a GPU: their workers take one GPU each by default."""


class PlanError(SpecError):
    """A plan field is wrong: `field` is its path in the plan, `fix` says what to write."""

    def __init__(self, message: str, *, field: str, fix: str) -> None:
        super().__init__(f"{field}: {message}; {fix}")
        self.field = field
        self.fix = fix


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capture(_Strict):
    """One group of episodes: a simulator set-up run once per seed (PyBullet) or replay (CARLA)."""

    name: str = Field(pattern=UNIT_NAME)
    """Names the group's units: `<name>-s<seed>` or `<name>-r<replay index>`."""
    simulator: Literal["pybullet", "carla"] = "pybullet"
    seconds: float = Field(gt=0)
    """Simulated seconds per episode."""
    seeds: list[int] | None = None
    """PyBullet scene seeds, one episode each."""
    seed_range: tuple[int, int] | None = None
    """[start, stop): the seeds start, start + 1, ..., stop - 1 (like Python's range)."""
    cameras: list[str] | None = None
    """Cameras to turn into clips (default: every camera of the episode)."""
    scene: str = "tabletop"
    """PyBullet scene name."""
    width: int = Field(1280, gt=0)
    height: int = Field(704, gt=0)
    renderer: Literal["auto", "egl", "tiny"] = "auto"
    rig: Path | None = None
    """CARLA sensor rig (YAML/TOML); default: one front camera."""
    replays: list[Path] | None = None
    """CARLA recorder logs, one episode each."""
    runs: int | None = Field(None, gt=0)
    """CARLA live captures (no replay): how many runs to record."""
    host: str = "localhost"
    port: int = Field(2000, gt=0, lt=65536)
    ego: str = "spawn"
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("seconds")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Capture:
        given = self.model_fields_set
        if self.simulator == "pybullet":
            _only(given, {"rig", "replays", "runs", "host", "port", "ego", "timeout_s"}, "carla")
            if (self.seeds is None) == (self.seed_range is None):
                raise ValueError("give either seeds: [0, 1, ...] or seed_range: [start, stop]")
            if self.seed_range is not None and not self.seed_range[0] < self.seed_range[1]:
                raise ValueError(f"seed_range {list(self.seed_range)}: need start < stop")
            if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds {self.seeds} repeat a seed; list each once")
            from cosmos_sim.bridges.pybullet import SCENES

            if self.scene not in SCENES:
                raise ValueError(f"scene {self.scene!r} is not known; use one of {list(SCENES)}")
        else:
            _only(
                given, {"seeds", "seed_range", "scene", "width", "height", "renderer"}, "pybullet"
            )
            if (self.replays is None) == (self.runs is None):
                raise ValueError("give either replays: [log, ...] or runs: N (live captures)")
        return self

    def unit_seeds(self) -> list[tuple[str, int, Path | None]]:
        """(unit id, seed, replay) for every episode of the group, in order."""
        if self.simulator == "pybullet":
            seeds = self.seeds if self.seeds is not None else range(*self.seed_range)
            return [(f"{self.name}-s{seed}", seed, None) for seed in seeds]
        if self.replays is not None:
            return [(f"{self.name}-r{i}", i, path) for i, path in enumerate(self.replays)]
        return [(f"{self.name}-r{i}", i, None) for i in range(self.runs)]


def _only(given: set[str], fields: set[str], simulator: str) -> None:
    stray = sorted(given & fields)
    if stray:
        raise ValueError(f"{', '.join(stray)} apply only to simulator: {simulator}; drop them")


class ControlsStage(_Strict):
    """Control videos and specs for each episode (`write_clips`), as a Ray task per episode."""

    modalities: list[Literal["depth", "seg", "edge", "vis", "lidar", "hdmap"]] | None = None
    """Default: every control the episode supports."""
    prompt: str | None = None
    """Written into the Transfer specs."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: float = Field(0.0, ge=0, le=1)
    """GPU fraction each controls task reserves (set it > 0 with device: cuda)."""
    xodr: Path | None = None
    """OpenDRIVE map for the hdmap control (default: the episode's own map.xodr)."""


class TransferStage(_Strict):
    """A transfer backend on each episode's clips, in resident Ray actors (one model each)."""

    backend: str = "appearance"
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Backend options (diffusers: model, controlnet, device, dtype, ...)."""
    prompt: str | None = None
    """One prompt for every camera (default: each clip's spec prompt)."""
    prompts: dict[str, str] | Path | None = None
    """One prompt per camera: a {camera: prompt} mapping or a .txt/.json file."""
    seed: int | None = None
    """Backend seed (default: the episode's seed)."""
    workers: int | None = Field(None, gt=0)
    """Resident actors (default: one per GPU for GPU backends, else 1)."""
    gpus_per_worker: float | None = Field(None, ge=0)
    """GPUs each actor holds (default: 1 for diffusers and cosmos-cli, 0 otherwise)."""
    cpus_per_worker: float = Field(0.0, ge=0)
    """CPUs each actor holds while alive (Ray's own default for a placed actor is 0)."""

    @field_validator("backend")
    @classmethod
    def _known(cls, name: str) -> str:
        from cosmos_sim.transfer.base import backend_names

        if name not in backend_names():
            raise ValueError(f"backend {name!r} is not known; use one of {backend_names()}")
        return name

    @model_validator(mode="after")
    def _one_prompt(self) -> TransferStage:
        if self.prompt is not None and self.prompts is not None:
            raise ValueError("give either prompt or prompts, not both")
        return self

    @field_validator("options")
    @classmethod
    def _options_fit(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Options the backend does not take, or lacks, are named now, not on every GPU later."""
        from cosmos_sim.extras import MissingExtra
        from cosmos_sim.transfer.base import backend_factory

        if "backend" not in info.data:
            return options  # the backend itself was refused
        try:
            params = inspect.signature(backend_factory(info.data["backend"])).parameters
        except MissingExtra:
            return options  # the driver may lack a GPU extra that the workers have
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return options
        takes = [n for n, p in params.items() if p.kind is not p.VAR_POSITIONAL]
        unknown = sorted(set(options) - set(takes))
        missing = [n for n, p in params.items() if p.default is p.empty and n not in options]
        if unknown or missing:
            raise ValueError(
                f"backend {info.data['backend']}: "
                + (f"{unknown} not taken; " if unknown else "")
                + (f"{missing} required; " if missing else "")
                + f"it takes {takes}"
            )
        return options

    @property
    def worker_gpus(self) -> float:
        if self.gpus_per_worker is not None:
            return self.gpus_per_worker
        return 1.0 if self.backend in GPU_BACKENDS else 0.0


class DatasetStage(_Strict):
    """A COCO-style dataset of each episode (transfer output, else the sim RGB), as a task.

    No options yet: `dataset: {}` turns the stage on.
    """


class Stages(_Strict):
    controls: ControlsStage | None = None
    transfer: TransferStage | None = None
    dataset: DatasetStage | None = None

    @model_validator(mode="after")
    def _order(self) -> Stages:
        if self.transfer is not None and self.controls is None:
            raise ValueError("transfer reads control clips: add a controls stage")
        return self


class Plan(_Strict):
    """Captures and the stages every captured episode goes through."""

    name: str = "plan"
    captures: list[Capture] = Field(min_length=1)
    stages: Stages = Field(default_factory=Stages)
    max_retries: int = Field(2, ge=0, le=10)
    """Ray retries of a unit whose worker process died (errors raised by a unit are final)."""
    max_units_in_flight: int | None = Field(None, gt=0)
    """Units started and not yet finished (backpressure; default: 2 × the cluster's CPUs)."""

    @model_validator(mode="after")
    def _unique_names(self) -> Plan:
        names = [c.name for c in self.captures]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"capture names {repeated} repeat; give each group its own name")
        return self

    def units(self) -> list[Unit]:
        """Every episode of the plan, in plan order."""
        return [
            Unit(unit_id, capture, seed, replay)
            for capture in self.captures
            for unit_id, seed, replay in capture.unit_seeds()
        ]

    def stage_names(self) -> list[str]:
        """The stages each unit goes through, in order (capture first)."""
        chosen = [
            name for name in ("controls", "transfer", "dataset") if getattr(self.stages, name)
        ]
        return ["capture", *chosen]


@dataclass(frozen=True)
class Unit:
    """One episode of the plan and everything made from it."""

    id: str
    capture: Capture
    seed: int
    replay: Path | None = None


def load_plan(source: str | Path | Mapping[str, Any]) -> Plan:
    """Read and check a plan (a YAML/JSON path or a mapping); raises PlanError on a bad field."""
    base = Path.cwd()
    where = "plan"
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"plan {path} does not exist; pass a YAML plan file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise PlanError(
                f"not valid YAML ({exc})", field=str(path), fix="fix the syntax"
            ) from exc
        base, where = path.resolve().parent, str(path)
    else:
        data = dict(source)
    if not isinstance(data, dict):
        raise PlanError(
            f"expected a mapping with captures: and stages:, got {type(data).__name__}",
            field=where,
            fix="see examples/plans/demo.yaml",
        )
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise _plan_error(exc, where) from None
    return _resolve_paths(plan, base)


def _plan_error(exc: ValidationError, where: str) -> PlanError:
    """The first validation error as a PlanError naming the field path and the fix."""
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if part not in ("function-after",)]
    field = _dotted(loc) or where
    if error["type"] == "extra_forbidden":
        known = _known_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return PlanError(
            f"unknown field in {where}",
            field=field,
            fix=f"{hint}fields here: {', '.join(known)}",
        )
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and error["type"] != "missing" and not isinstance(error["input"], dict):
        message += f" (got {json.dumps(error['input'], default=str)})"
    return PlanError(f"{message} in {where}", field=field, fix="see examples/plans/demo.yaml")


def _dotted(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _known_fields(loc: list[Any]) -> list[str]:
    """Field names of the plan model at `loc` (a path of field names and list indices)."""
    model: Any = Plan
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        model = next(
            (t for t in _flatten(annotation) if isinstance(t, type) and issubclass(t, BaseModel)),
            None,
        )
        if model is None:
            return []
    return list(model.model_fields)


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [t for arg in args for t in _flatten(arg)]


def _resolve_paths(plan: Plan, base: Path) -> Plan:
    """Plan paths made absolute from the plan's folder, each checked to exist."""

    def resolve(path: Path | None, field: str) -> Path | None:
        if path is None:
            return None
        full = path if path.is_absolute() else base / path
        if not full.exists():
            raise PlanError(
                f"{full} does not exist", field=field, fix="give a path relative to the plan file"
            )
        return full.resolve()

    captures = []
    for i, c in enumerate(plan.captures):
        replays = None
        if c.replays is not None:
            replays = [resolve(p, f"captures[{i}].replays[{j}]") for j, p in enumerate(c.replays)]
        captures.append(
            c.model_copy(update={"rig": resolve(c.rig, f"captures[{i}].rig"), "replays": replays})
        )
    stages = plan.stages
    if stages.controls is not None and stages.controls.xodr is not None:
        xodr = resolve(stages.controls.xodr, "stages.controls.xodr")
        stages = stages.model_copy(
            update={"controls": stages.controls.model_copy(update={"xodr": xodr})}
        )
    if stages.transfer is not None and isinstance(stages.transfer.prompts, Path):
        prompts = resolve(stages.transfer.prompts, "stages.transfer.prompts")
        stages = stages.model_copy(
            update={"transfer": stages.transfer.model_copy(update={"prompts": prompts})}
        )
    return plan.model_copy(update={"captures": captures, "stages": stages})
