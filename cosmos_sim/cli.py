"""The `cosmos-sim` command line: capture, controls, demo and the commands each feature adds.

Heavy imports live inside each command so `cosmos-sim --help` stays fast.
"""

from __future__ import annotations

import errno
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cosmos_sim.extras import MissingExtra, require
from cosmos_sim.types import SpecError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

#: Errors that are the user's input, not our bug: printed as one line, exit code 2. Anything
#: else (a KeyError, a numpy ValueError) is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    SpecError,
    MissingExtra,
    FileExistsError,
    FileNotFoundError,
    PermissionError,
)

#: OSErrors that are the machine's state, not a bug: one line too.
_OS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


@contextmanager
def user_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn bad input into a one-line `error:` message and exit code 2: USER_ERRORS, a
    transfer BackendError, a full or read-only disk, and `also` (for commands whose
    libraries raise plain ValueError on bad input). Anything else keeps its traceback."""
    from cosmos_sim.transfer.base import BackendError

    try:
        yield
    except (*USER_ERRORS, BackendError, *also, OSError) as exc:
        known = isinstance(exc, (*USER_ERRORS, BackendError, *also))
        if not known and getattr(exc, "errno", None) not in _OS_ERRNOS:
            raise
        fix = getattr(exc, "fix", None)
        message = str(exc) + (f" (fix: {fix})" if fix and fix not in str(exc) else "")
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc


@contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so writers finalise what they kept (as on Ctrl-C)."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(label: str, path: Path | str) -> None:
    typer.echo(f"  {label:<18} {path}")


@app.command()
def capture(
    out: Annotated[Path, typer.Option(help="New episode folder (must not exist or be empty).")],
    sim: Annotated[str, typer.Option(help="Simulator: pybullet or carla.")] = "pybullet",
    scene: Annotated[str, typer.Option(help="PyBullet scene: tabletop or street.")] = "tabletop",
    seconds: Annotated[float, typer.Option(help="Simulated seconds to record.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Scene seed.")] = 0,
    width: Annotated[int, typer.Option(help="PyBullet camera width in pixels.")] = 1280,
    height: Annotated[int, typer.Option(help="PyBullet camera height in pixels.")] = 704,
    renderer: Annotated[str, typer.Option(help="PyBullet renderer: auto, egl or tiny.")] = "auto",
    host: Annotated[str, typer.Option(help="CARLA server host.")] = "localhost",
    port: Annotated[int, typer.Option(help="CARLA server port.")] = 2000,
    rig: Annotated[Path | None, typer.Option(help="CARLA sensor rig (YAML/TOML).")] = None,
    ego: Annotated[str, typer.Option(help="CARLA ego actor id, or 'spawn'.")] = "spawn",
    replay: Annotated[Path | None, typer.Option(help="CARLA recorder log to replay.")] = None,
    timeout: Annotated[float, typer.Option(help="CARLA connection timeout in s.")] = 10.0,
    augment: Annotated[
        str | None,
        typer.Option(help="Transfer backend that augments the run as it goes, into OUT/augmented."),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Prompt for --augment.")] = None,
    overflow: Annotated[
        str, typer.Option(help="When --augment lags: block (wait) or skip (drop chunks).")
    ] = "block",
) -> None:
    """Record an episode from a live simulator run (and augment it in the same run)."""
    options = dict(sim=sim, scene=scene, seconds=seconds, seed=seed, width=width,
                   height=height, renderer=renderer, host=host, port=port, rig=rig,
                   ego=ego, replay=replay, timeout=timeout)  # fmt: skip
    try:
        with user_errors(), _interrupt_on_sigterm():
            if augment is not None:
                from cosmos_sim.augment.cli import capture_and_augment

                capture_and_augment(_capture, out, augment, prompt, overflow, _say, **options)
                return
            path = _capture(out, **options)
    except KeyboardInterrupt:
        _kept(out)
        raise typer.Exit(code=130) from None
    _say("episode", path)


def _kept(out: Path) -> None:
    """Say what an interrupted capture kept (the writer has finalised its manifest)."""
    from cosmos_sim.episode import Episode, EpisodeError

    try:
        ticks = len(Episode(out))
    except (EpisodeError, OSError):
        typer.secho(f"interrupted: nothing usable was written to {out}", fg="red", err=True)
        return
    typer.secho(
        f"interrupted: kept {ticks} whole ticks in {out} (marked incomplete; "
        "`cosmos-sim controls` reads them)",
        fg="yellow",
        err=True,
    )


def _capture(out: Path, *, sim: str, seconds: float, on_tick: Any = None, **options: Any) -> Path:
    if seconds <= 0:
        raise SpecError(f"--seconds must be > 0, got {seconds}", field="--seconds")
    if sim == "pybullet":
        from cosmos_sim.bridges.pybullet import make_scene, record_episode

        scene = make_scene(
            options["scene"],
            seed=options["seed"],
            width=options["width"],
            height=options["height"],
            renderer=options["renderer"],
        )
        try:
            typer.echo(f"PyBullet scene {scene.name!r}, renderer: {scene.bridge.renderer}")
            return record_episode(scene, seconds, out, on_tick=on_tick)
        finally:
            scene.close()
    if sim == "carla":
        from cosmos_sim.bridges.carla import capture_episode

        return capture_episode(
            out,
            host=options["host"],
            port=options["port"],
            rig=options["rig"],
            ego=options["ego"],
            seconds=seconds,
            replay=options["replay"],
            timeout_s=options["timeout"],
            on_tick=on_tick,
        )
    raise SpecError(f"--sim {sim!r} is not known; use 'pybullet' or 'carla'", field="--sim")


@app.command()
def controls(
    run: Annotated[Path, typer.Argument(help="Episode folder written by `capture`.")],
    out: Annotated[
        Path, typer.Option(help="New folder for the clips (must not exist or be empty).")
    ],
    modalities: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of depth,seg,edge,vis,lidar,hdmap [default: all "
            "the episode supports; lidar needs a recorded LiDAR, hdmap an OpenDRIVE map: "
            "the episode's map.xodr (CARLA captures) or --xodr]."
        ),
    ] = None,
    xodr: Annotated[
        Path | None,
        typer.Option(help="OpenDRIVE map for hdmap [default: the episode's map.xodr]."),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Prompt written into the specs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the seg palette and the specs.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    chunk_frames: Annotated[
        int | None,
        typer.Option(help="Output frames computed and encoded at a time, 1-93 (default 8)."),
    ] = None,
    skip_damaged: Annotated[
        bool,
        typer.Option(help="Show the tick before an unreadable tick record in its place."),
    ] = False,
) -> None:
    """Turn an episode into Cosmos Transfer control videos and specs, one folder per camera."""
    from cosmos_sim.pipeline import run_pipeline

    with user_errors():
        result = run_pipeline(
            run, out, stages=["controls"], modalities=modalities, prompt=prompt, seed=seed,
            device=device, xodr=xodr, chunk_frames=chunk_frames, skip_damaged=skip_damaged,
        )  # fmt: skip
    _say("clips", out)
    for camera in sorted(result.clips_info.get("cameras", {})):
        _say(f"  {camera}", Path(out) / camera)
    for note in result.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW, err=True)


def _default_demo_dir() -> Path:
    return Path("cosmos-sim-demo") / time.strftime("%Y%m%d-%H%M%S")


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option(help="New output folder (default: cosmos-sim-demo/<time>).")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Simulated seconds of tabletop capture.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed for the scene and everything after it.")] = 0,
) -> None:
    """The main job on embedded defaults, no GPU and no download: capture a PyBullet tabletop
    run, write Cosmos control videos and specs, restyle it with the embedded appearance
    backend (classical appearance randomisation, not Cosmos), export a labelled dataset, and
    roll out the embedded world model (ours, not Cosmos) beside the real PushCube env.
    """
    out = out or _default_demo_dir()
    with user_errors():
        from cosmos_sim.episode import ensure_empty_dir
        from cosmos_sim.pipeline import run_pipeline
        from cosmos_sim.world_model_demo import demo_rollout

        ensure_empty_dir(out, "demo folder")
        episode, clips = out / "episode", out / "clips"
        transfer, dataset, learned = out / "transfer", out / "dataset", out / "learned_env"
        typer.secho("[1/5] capture: PyBullet tabletop", bold=True)
        _capture(
            episode, sim="pybullet", scene="tabletop", seconds=seconds, seed=seed,
            width=1280, height=704, renderer="auto",
        )  # fmt: skip
        titles = {
            "controls": "[2/5] controls: Cosmos Transfer control videos and specs",
            "transfer": "[3/5] transfer: embedded appearance backend (not Cosmos)",
            "dataset": "[4/5] dataset: output frames with the episode's labels",
        }
        run_pipeline(
            episode, out, seed=seed, backend="appearance",
            on_stage=lambda stage: typer.secho(titles[stage], bold=True),
        )  # fmt: skip
        typer.secho("[5/5] learned env: embedded world model (ours) vs real PushCube", bold=True)
        rollout = demo_rollout(learned, seed=seed)
    typer.secho("cosmos-sim demo finished:", fg=typer.colors.GREEN)
    _say("episode", episode)
    _say("control clips", clips)
    for spec in sorted(clips.glob("*/transfer25.json")):
        _say("Transfer 2.5 spec", spec)
    for sheet in sorted(clips.glob("*/contact_sheet.png")):
        _say("controls sheet", sheet)
    _say("appearance output", transfer)
    _say("dataset (COCO)", dataset / "annotations.json")
    for sheet in sorted(dataset.glob("overlay_*.png")):
        _say("overlay sheet", sheet)
    for path in sorted(rollout.values()):
        _say("learned env", path)


@app.command()
def serve(
    bind: Annotated[
        str, typer.Option(help="ipc:///path or tcp://127.0.0.1:PORT (others need --curve-keys).")
    ] = "tcp://127.0.0.1:5555",
    curve_keys: Annotated[
        Path | None,
        typer.Option(
            help="Key folder from `cosmos-sim keygen`: encrypt, and "
            "accept only its authorized_clients."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker threads for the slower methods.")] = 4,
    data_dir: Annotated[
        Path, typer.Option(help="Folder that episode paths are relative to.")
    ] = Path("runs/sidecar"),
    max_array_mb: Annotated[int, typer.Option(help="Largest array frame in MiB.")] = 256,
    max_message_mb: Annotated[int, typer.Option(help="Largest request in MiB.")] = 512,
    max_arrays: Annotated[int, typer.Option(help="Most array frames per request.")] = 64,
    max_request_s: Annotated[
        int, typer.Option(help="Time limit of a stateless request (controls, reads), s.")
    ] = 60,
    max_sessions: Annotated[int, typer.Option(help="Most client sessions at once.")] = 1024,
    max_sessions_per_peer: Annotated[
        int, typer.Option(help="Most sessions of one peer (CURVE key, IP or ipc process).")
    ] = 256,
    transfer_backend: Annotated[
        str, typer.Option(help="Backend of transfer jobs: appearance, diffusers, cosmos-cli.")
    ] = "appearance",
    transfer_option: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE backend option (repeat), e.g. model=DIR.")
    ] = None,
    job_workers: Annotated[int, typer.Option(help="Transfer jobs run at once.")] = 1,
    env_id: Annotated[
        list[str] | None,
        typer.Option(
            help="Gymnasium id clients may make (repeat); default: "
            "cosmos_sim/LearnedPushCube-v0 and cosmos_sim/PushCube-v0."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Controls: auto (GPU kernels when CUDA is visible), cpu or cuda.")
    ] = "auto",
) -> None:
    """Run the ZeroMQ sidecar (PROTOCOL.md) until SIGINT/SIGTERM or a `shutdown` request."""
    import json
    import signal

    from cosmos_sim.sidecar import Limits, Server

    with user_errors(ValueError):
        options = {}
        for item in transfer_option or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise SpecError(f"--transfer-option {item!r}: write KEY=VALUE")
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError:
                options[key] = value
        limits = Limits(
            max_message_bytes=max_message_mb * 2**20,
            max_array_bytes=max_array_mb * 2**20,
            max_arrays=max_arrays,
            max_request_s=max_request_s,
        )
        server = Server(
            bind,
            workers=workers,
            limits=limits,
            max_sessions=max_sessions,
            max_sessions_per_peer=max_sessions_per_peer,
            curve_keys=curve_keys,
            data_dir=data_dir,
            transfer_backend=transfer_backend,
            transfer_options=options,
            job_workers=job_workers,
            env_ids=env_id,
            device=device,
        )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.request_stop())
    typer.echo(
        f"cosmos-sim sidecar listening on {server.endpoint} "
        f"({'CURVE' if server.curve else 'no encryption: local only'}, "
        f"{workers} workers, methods: {', '.join(sorted(server.methods))})",
        err=True,
    )
    server.serve_forever()
    typer.echo("cosmos-sim sidecar stopped", err=True)


@app.command()
def keygen(
    keys_dir: Annotated[Path, typer.Argument(help="Key folder (created if missing).")],
    client: Annotated[str, typer.Option(help="Name of the client keypair to add.")] = "client",
) -> None:
    """Create sidecar CURVE keys: the server keypair (once) and an authorised client keypair."""
    from cosmos_sim.sidecar import keygen as make_keys

    with user_errors(ValueError):
        paths = make_keys(keys_dir, client)
    _say("server public key", paths["server_public"])
    _say("client keypair", paths["client_secret"])
    _say("authorised as", paths["authorized"])
    typer.echo(f"serve with: cosmos-sim serve --bind tcp://HOST:PORT --curve-keys {keys_dir}")


@app.command()
def hdmap(
    xodr: Annotated[Path, typer.Option(help="OpenDRIVE map (.xodr).")],
    out: Annotated[Path, typer.Option(help="New output folder (must not exist or be empty).")],
    rig: Annotated[
        str | None,
        typer.Option(
            help="Rig file (YAML/TOML), or 'nvidia' (the 7-camera AV rig); "
            "default: one front camera."
        ),
    ] = None,
    trajectory: Annotated[
        Path | None,
        typer.Option(
            help="Ego trajectory JSON; default: drive the first lane (stop at a dead end)."
        ),
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option(
            help="Clip length; default: transfer25 93 frames (57 for the 7 views), transfer1 "
            "121 (57 for its 6 views), cosmos3 101."
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            help="Colours: v3 (Transfer 2.5 / Cosmos 3) or v1 (Transfer 1); default: the "
            "target's (transfer1 takes v1 only, cosmos3 v3 only)."
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="transfer25 (hdmap videos + specs, 16/10 fps), transfer1 (v1 hdmap at 30 fps "
            "+ transfer1_av.json) or cosmos3 (wsm videos)."
        ),
    ] = "transfer25",
    front_rgb: Annotated[
        Path | None,
        typer.Option(
            help="transfer1 six-view rig: the front camera's RGB mp4 (view_condition_video), "
            "to write transfer1_multiview.json."
        ),
    ] = None,
) -> None:
    """Render the HD-map (world-scenario map, `wsm`) control of an OpenDRIVE map, no server."""
    with user_errors(ValueError):
        from cosmos_sim.wsm import write_hdmap_clip

        written = write_hdmap_clip(
            xodr, out, rig=rig, trajectory=trajectory, seconds=seconds, version=version,
            target=target, view_condition_video=front_rgb,
        )  # fmt: skip
    typer.echo(f"{written['frames']} frames at {written['fps']:g} fps")
    if written["unknown_signals"]:
        typer.echo(f"signal types not drawn: {', '.join(written['unknown_signals'])}", err=True)
    for key in ("video", "contact_sheet", "poses", "spec", "manifest", "multiview_spec"):
        if key in written:
            _say(key.replace("_", " "), written[key])
    if "specs" in written:
        _say("specs", f"{len(written['specs'])} × <camera>/transfer1_av.json")
    if "note" in written:
        typer.echo(f"note: {written['note']}")


@app.command("eval-policies")
def eval_policies(
    policies: Annotated[
        str,
        typer.Option(
            help="Comma-separated policies: module:function (a dict/list expands), "
            "[ALGO:]model.zip (stable-baselines3), http://HOST:PORT?prompt=TASK&domain_name=D "
            "(a cosmos-framework action policy server), label=spec to rename."
        ),
    ],
    out: Annotated[Path, typer.Option(help="New folder for report.json and scatter.png.")],
    real: Annotated[str, typer.Option(help="Gymnasium id of the real env.")] = (
        "cosmos_sim/PushCube-v0"
    ),
    learned: Annotated[str, typer.Option(help="Gymnasium id of the learned env.")] = (
        "cosmos_sim/LearnedPushCube-v0"
    ),
    episodes: Annotated[int, typer.Option(help="Episodes per policy in each env.")] = 50,
    seed: Annotated[int, typer.Option(help="Episode k resets with seed + k.")] = 0,
    num_envs: Annotated[
        int, typer.Option(help="Learned-env episodes run as lanes of one batched model call.")
    ] = 16,
    paired_starts: Annotated[
        bool, typer.Option(help="Start the learned env from the real env's first frames.")
    ] = True,
    max_steps: Annotated[int, typer.Option(help="Cap on steps per episode.")] = 1000,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    real_kwargs: Annotated[str, typer.Option(help="JSON keyword arguments for the real env.")] = (
        "{}"
    ),
    learned_kwargs: Annotated[
        str,
        typer.Option(help='JSON keyword arguments for the learned env, e.g. {"device": "cuda"}.'),
    ] = "{}",
) -> None:
    """Rank policies in the learned env and the real one: success, return, Pearson, Spearman,
    MMRV (SIMPLER), with bootstrap CIs; writes report.json and scatter.png."""
    import json

    with user_errors(ValueError):
        from cosmos_sim.envs.policy_eval import evaluate_policies

        report = evaluate_policies(
            policies,
            real=real,
            learned=learned,
            episodes=episodes,
            out=out,
            seed=seed,
            paired_starts=paired_starts,
            num_envs=num_envs,
            max_steps=max_steps,
            bootstrap_samples=bootstrap,
            real_kwargs=json.loads(real_kwargs),
            learned_kwargs=json.loads(learned_kwargs),
        )
    typer.echo(f"{'policy':<24} {'real success':>14} {'learned success':>16}")
    for entry in report["policies"]:
        typer.echo(
            f"{entry['name']:<24} {entry['real']['success_rate']:>14.2f} "
            f"{entry['learned']['success_rate']:>16.2f}"
        )
    for key, metrics in report["metrics"].items():
        values = ", ".join(
            f"{name} {'n/a' if metrics[name] is None else format(metrics[name], '.3f')}"
            for name in ("pearson", "spearman", "mmrv")
        )
        typer.echo(f"{key}: {values}")
    _say("report", report["files"]["report"])
    _say("scatter plot", report["files"]["scatter"])


@app.command()
def transfer(
    clips: Annotated[
        Path,
        typer.Argument(help="Clips folder from `controls` (or `hdmap --target cosmos3`: cosmos3)."),
    ],
    out: Annotated[Path, typer.Option(help="New folder for the transfer output.")],
    backend: Annotated[
        str, typer.Option(help="appearance (CPU, classical), diffusers, cosmos-cli, cosmos3, "
                          "cosmos-framework.")
    ] = "appearance",
    model: Annotated[
        str | None,
        typer.Option(
            help="diffusers, cosmos3: local pipeline folder or cached hub id; cosmos-cli: the "
            "tool's --model (e.g. edge/distilled, 4 steps); cosmos-framework: --checkpoint-path."
        ),
    ] = None,
    controlnet: Annotated[
        str | None, typer.Option(help="Control to drive: edge, depth, seg or blur (vis).")
    ] = None,
    controlnet_model: Annotated[
        Path | None, typer.Option(help="diffusers: a controlnet folder to use instead.")
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Prompt for every camera.")] = None,
    prompts: Annotated[
        Path | None, typer.Option(help="One prompt per camera: .txt lines or .json.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the backend.")] = 0,
    cosmos_root: Annotated[
        Path | None, typer.Option(help="cosmos-cli: a cosmos-transfer2.5 checkout.")
    ] = None,
    nproc_per_node: Annotated[int, typer.Option(help="cosmos-cli: GPUs (torchrun).")] = 1,
    device: Annotated[str, typer.Option(help="diffusers: torch device.")] = "cuda",
    dtype: Annotated[str, typer.Option(help="diffusers: bfloat16, float16, float32.")] = (
        "bfloat16"
    ),
    steps: Annotated[int | None, typer.Option(help="Denoising steps (Cosmos: 35).")] = None,
    control_set: Annotated[str | None, typer.Option("--controls", help="cosmos3, cosmos-framework:"
                           " controls fed together, e.g. edge,depth (default: all)")] = None,
    resolution: Annotated[int | None, typer.Option(help="cosmos3, cosmos-framework: Cosmos 3 "
                          "resolution tier (720; Cosmos3-Edge: 480).")] = None,
) -> None:  # fmt: skip
    """Run a transfer backend on every clip: OUT/<camera>/output.mp4 + OUT/transfer.json."""
    given = {"--model": model, "--controlnet": controlnet, "--controlnet-model": controlnet_model,
             "--cosmos-root": cosmos_root, "--steps": steps, "--controls": control_set,
             "--resolution": resolution}  # fmt: skip
    stray = [flag for flag, value in given.items() if value is not None]
    stray = [flag for flag in stray if flag not in _TRANSFER_FLAGS.get(backend, given)]
    if stray:
        typer.secho(
            f"error: {', '.join(stray)} does not apply to --backend {backend}; drop it or "
            "pick the backend that uses it (diffusers: --model/--controlnet/--controlnet-model/"
            "--steps; cosmos-cli: --cosmos-root/--controlnet/--steps/--model; cosmos3: --model/"
            "--controls/--resolution/--steps; cosmos-framework: --cosmos-root/--model/--controls/"
            "--resolution/--steps)",
            fg="red", err=True,
        )  # fmt: skip
        raise typer.Exit(code=2)
    options: dict[str, Any] = {}
    if backend == "diffusers":
        options = {"model": model, "device": device, "dtype": dtype, "controlnet": controlnet,
                   "controlnet_model": controlnet_model, "num_inference_steps": steps}  # fmt: skip
        required = ("model", "--model PATH_OR_HUB_ID")
    elif backend == "cosmos-cli":
        controls = {"blur": "vis"}.get(controlnet, controlnet)  # Cosmos' name for blur
        options = {"cosmos_root": cosmos_root, "nproc_per_node": nproc_per_node,
                   "controls": controls, "num_steps": steps, "model": model}  # fmt: skip
        required = ("cosmos_root", "--cosmos-root PATH")
    elif backend == "cosmos3":
        options = {"model": model, "device": device, "dtype": dtype, "controls": control_set,
                   "resolution": resolution, "num_inference_steps": steps}  # fmt: skip
        required = ("model", "--model PATH_OR_HUB_ID")
    elif backend == "cosmos-framework":
        options = {"cosmos_root": cosmos_root, "checkpoint": model, "controls": control_set,
                   "nproc_per_node": nproc_per_node, "resolution": resolution,
                   "num_steps": steps}  # fmt: skip
        required = ("cosmos_root", "--cosmos-root PATH")
    if options and options[required[0]] is None:
        typer.secho(f"error: --backend {backend} needs {required[1]}", fg="red", err=True)
        raise typer.Exit(code=2)
    options = {k: v for k, v in options.items() if v is not None}
    with user_errors():
        from cosmos_sim.pipeline import run_pipeline

        path = run_pipeline(
            None, out, stages=["transfer"], clips=clips, backend=backend,
            backend_options=options, prompt=prompt, prompts=prompts, seed=seed,
        ).transfer  # fmt: skip
    _say("transfer output", path)
    _say("manifest", path / "transfer.json")


_TRANSFER_FLAGS = {
    "appearance": (),
    "diffusers": ("--model", "--controlnet", "--controlnet-model", "--steps"),
    "cosmos-cli": ("--cosmos-root", "--controlnet", "--steps", "--model"),
    "cosmos3": ("--model", "--controls", "--resolution", "--steps"),
    "cosmos-framework": ("--cosmos-root", "--model", "--controls", "--resolution", "--steps"),
}
"""The backend-specific options each transfer backend takes; others are refused, not ignored."""


@app.command()
def dataset(
    run: Annotated[Path, typer.Argument(help="Episode folder written by `capture`.")],
    out: Annotated[Path, typer.Argument(help="New folder for the dataset.")],
    transfer_out: Annotated[
        Path | None,
        typer.Option("--transfer", help="`transfer` output; without it, the sim RGB is used."),
    ] = None,
) -> None:
    """Write a COCO-style labelled dataset: images, RLE masks, boxes, depth, K and poses."""
    with user_errors():
        from cosmos_sim.pipeline import run_pipeline

        path = run_pipeline(run, out, stages=["dataset"], transfer_out=transfer_out).dataset
    _say("dataset", path)
    _say("annotations", path / "annotations.json")
    for sheet in sorted(path.glob("overlay_*.png")):
        _say("overlay sheet", sheet)


@app.command()
def batch(
    plan: Annotated[
        Path, typer.Argument(help="Plan (YAML): captures and stages; see examples/plans/.")
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder; a re-run into it skips finished units.")
    ],
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join [default: local Ray].")
    ] = None,
    num_cpus: Annotated[int | None, typer.Option(help="Local Ray CPUs [default: all].")] = None,
    num_gpus: Annotated[int | None, typer.Option(help="Local Ray GPUs [default: all].")] = None,
) -> None:
    """Run a plan of many episodes on Ray (needs the `ray` extra): captures and controls as tasks,
    transfer in resident GPU actors, datasets as tasks; resumable; DIR/batch_report.json."""
    with user_errors(ValueError):
        for module in ("ray", "pydantic"):
            require(module, "ray", "cosmos-sim batch")
        from cosmos_sim.batch.cli import batch_command

        batch_command(plan, out, address=address, num_cpus=num_cpus, num_gpus=num_gpus)


@app.command()
def view(
    run: Annotated[Path, typer.Argument(help="Episode folder, or a `cosmos-sim demo` folder.")],
    save: Annotated[
        Path | None, typer.Option(help="Write a .rrd recording instead of opening the viewer.")
    ] = None,
    clips: Annotated[Path | None, typer.Option(help="`controls` output to show.")] = None,
    transfer: Annotated[Path | None, typer.Option(help="`transfer` output to show.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="`dataset` output to show.")] = None,
) -> None:
    """Open a run in the rerun viewer (pip install 'cosmos-sim[view]'): cameras in 3D, RGB,
    depth, segmentation, control videos, transfer output, labels, LiDAR and boxes on the sim
    timeline."""
    with user_errors(ValueError):
        from cosmos_sim.view import find_run, view_run

        folders = find_run(run, clips=clips, transfer=transfer, dataset=dataset)
        saved = view_run(folders, save=save)
    if saved is not None:
        _say("recording", saved)


@app.command()
def critic(
    run: Annotated[Path, typer.Argument(help="Episode folder, or a `cosmos-sim demo` folder.")],
    model: Annotated[
        str, typer.Option(help="Cosmos Reason folder, or a hub id in the local cache.")
    ],
    transfer: Annotated[Path | None, typer.Option(help="`transfer` output to score.")] = None,
    learned: Annotated[
        Path | None, typer.Option(help="Folder of learned-env .mp4 rollouts.")
    ] = None,
    dataset: Annotated[Path | None, typer.Option(help="`dataset` output to annotate.")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Drop dataset cameras scoring under this (0-1).")
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames sampled per video.")] = 8,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="bfloat16, float16, float32.")] = "float32",
) -> None:
    """Score transfer output (physical plausibility, prompt adherence) and learned-env rollouts
    (plausibility) with a Cosmos Reason model; scores go beside them and into the dataset."""
    with user_errors(ValueError):
        from cosmos_sim.critic import ReasonCritic, filter_dataset, score_run
        from cosmos_sim.view import find_run

        folders = find_run(run, transfer=transfer, learned=learned, dataset=dataset)
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"--threshold {threshold}: pass a probability in [0, 1]")
        judge = ReasonCritic(model, device=device, dtype=dtype, frames_per_video=frames)
        written = score_run(judge, transfer=folders.transfer, learned=folders.learned)
        if folders.dataset is not None and "transfer" in written:
            filter_dataset(folders.dataset, written["transfer"], threshold)
    for part, payload in written.items():
        for name, score in payload["scores"].items():
            values = ", ".join(f"{k} {v:.3f}" for k, v in score.items() if v is not None)
            typer.echo(f"{part:<9} {name:<24} {values}")


def main() -> None:
    from cosmos_sim.heap import reexec_with_bounded_heap

    reexec_with_bounded_heap()  # flat peak memory for streamed chunks (cosmos_sim/heap.py)
    app(prog_name="cosmos-sim")
