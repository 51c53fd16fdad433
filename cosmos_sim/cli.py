"""The `cosmos-sim` command line: capture, controls, demo and the commands each feature adds.

Heavy imports live inside each command so `cosmos-sim --help` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

#: Errors that are the user's input, not our bug: printed as one line, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    FileExistsError,
    FileNotFoundError,
    PermissionError,
    KeyError,
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad-input exceptions into a one-line `error:` message instead of a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc


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
) -> None:
    """Record an episode from a live simulator run."""
    with user_errors():
        path = _capture(
            out,
            sim=sim,
            scene=scene,
            seconds=seconds,
            seed=seed,
            width=width,
            height=height,
            renderer=renderer,
            host=host,
            port=port,
            rig=rig,
            ego=ego,
            replay=replay,
            timeout=timeout,
        )
    _say("episode", path)


def _capture(out: Path, *, sim: str, seconds: float, **options: Any) -> Path:
    if seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {seconds}")
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
            return record_episode(scene, seconds, out)
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
        )
    raise ValueError(f"--sim {sim!r} is not known; use 'pybullet' or 'carla'")


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
) -> None:
    """Turn an episode into Cosmos Transfer control videos and specs, one folder per camera."""
    with user_errors():
        written = _controls(
            run, out, modalities=modalities, prompt=prompt, seed=seed, device=device, xodr=xodr
        )
    _say("clips", out)
    for camera in sorted(written.get("cameras", {})):
        _say(f"  {camera}", Path(out) / camera)


def _controls(
    run: Path,
    out: Path,
    *,
    modalities: str | None,
    prompt: str | None,
    seed: int,
    device: str,
    xodr: Path | None = None,
) -> dict[str, Any]:
    from cosmos_sim.controls.clips import write_clips

    names = None if modalities is None else [m.strip() for m in modalities.split(",")]
    kwargs: dict[str, Any] = {"modalities": names, "seed": seed, "device": device, "xodr": xodr}
    if prompt is not None:
        kwargs["prompt"] = prompt
    return write_clips(run, out, **kwargs)


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
        from cosmos_sim.dataset import write_dataset
        from cosmos_sim.envs.embedded import demo_rollout
        from cosmos_sim.episode import ensure_empty_dir
        from cosmos_sim.transfer import run_transfer

        ensure_empty_dir(out, "demo folder")
        episode, clips = out / "episode", out / "clips"
        transfer, dataset, learned = out / "transfer", out / "dataset", out / "learned_env"
        typer.secho("[1/5] capture: PyBullet tabletop", bold=True)
        _capture(
            episode, sim="pybullet", scene="tabletop", seconds=seconds, seed=seed,
            width=1280, height=704, renderer="auto",
        )  # fmt: skip
        typer.secho("[2/5] controls: Cosmos Transfer control videos and specs", bold=True)
        _controls(episode, clips, modalities=None, prompt=None, seed=seed, device="auto")
        typer.secho("[3/5] transfer: embedded appearance backend (not Cosmos)", bold=True)
        run_transfer(clips, transfer, backend="appearance", seed=seed)
        typer.secho("[4/5] dataset: output frames with the episode's labels", bold=True)
        write_dataset(episode, transfer, dataset)
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

    with user_errors():
        options = {}
        for item in transfer_option or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--transfer-option {item!r}: write KEY=VALUE")
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError:
                options[key] = value
        limits = Limits(
            max_message_bytes=max_message_mb * 2**20,
            max_array_bytes=max_array_mb * 2**20,
            max_arrays=max_arrays,
        )
        server = Server(
            bind,
            workers=workers,
            limits=limits,
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

    with user_errors():
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
        typer.Option(help="Clip length; default 93 frames (57 multiview, 101 for cosmos3)."),
    ] = None,
    version: Annotated[
        str, typer.Option(help="Colours: v3 (Transfer 2.5 / Cosmos 3) or v1.")
    ] = "v3",
    target: Annotated[
        str, typer.Option(help="transfer25 (hdmap videos + specs) or cosmos3 (wsm videos).")
    ] = "transfer25",
) -> None:
    """Render the HD-map (world-scenario map, `wsm`) control of an OpenDRIVE map, no server."""
    with user_errors():
        from cosmos_sim.wsm import write_hdmap_clip

        written = write_hdmap_clip(
            xodr, out, rig=rig, trajectory=trajectory, seconds=seconds, version=version,
            target=target,
        )  # fmt: skip
    typer.echo(f"{written['frames']} frames at {written['fps']:g} fps")
    if written["unknown_signals"]:
        typer.echo(f"signal types not drawn: {', '.join(written['unknown_signals'])}", err=True)
    for key in ("video", "contact_sheet", "poses", "spec", "manifest"):
        if key in written:
            _say(key.replace("_", " "), written[key])


@app.command("eval-policies")
def eval_policies(
    policies: Annotated[
        str,
        typer.Option(
            help="Comma-separated policies: module:function (a dict/list expands), "
            "[ALGO:]model.zip (stable-baselines3), label=spec to rename."
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

    with user_errors():
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
    clips: Annotated[Path, typer.Argument(help="Clips folder written by `controls`.")],
    out: Annotated[Path, typer.Option(help="New folder for the transfer output.")],
    backend: Annotated[
        str, typer.Option(help="appearance (CPU, classical), diffusers or cosmos-cli.")
    ] = "appearance",
    model: Annotated[
        str | None, typer.Option(help="diffusers: local pipeline folder or cached hub id.")
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
) -> None:
    """Run a transfer backend on every clip: OUT/<camera>/output.mp4 + OUT/transfer.json."""
    given = {"--model": model, "--controlnet": controlnet, "--controlnet-model": controlnet_model,
             "--cosmos-root": cosmos_root, "--steps": steps}  # fmt: skip
    stray = [flag for flag, value in given.items() if value is not None]
    stray = [flag for flag in stray if flag not in _TRANSFER_FLAGS.get(backend, given)]
    if stray:
        typer.secho(
            f"error: {', '.join(stray)} does not apply to --backend {backend}; drop it or "
            "pick the backend that uses it (diffusers: --model/--controlnet/--controlnet-model/"
            "--steps; cosmos-cli: --cosmos-root/--controlnet/--steps)",
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
                   "controls": controls, "num_steps": steps}  # fmt: skip
        required = ("cosmos_root", "--cosmos-root PATH")
    if options and options[required[0]] is None:
        typer.secho(f"error: --backend {backend} needs {required[1]}", fg="red", err=True)
        raise typer.Exit(code=2)
    options = {k: v for k, v in options.items() if v is not None}
    with user_errors(), _backend_errors():
        from cosmos_sim.transfer import run_transfer

        path = run_transfer(
            clips, out, backend=backend, prompt=prompt, prompts=prompts, seed=seed, **options
        )
    _say("transfer output", path)
    _say("manifest", path / "transfer.json")


_TRANSFER_FLAGS = {
    "appearance": (),
    "diffusers": ("--model", "--controlnet", "--controlnet-model", "--steps"),
    "cosmos-cli": ("--cosmos-root", "--controlnet", "--steps"),
}
"""The backend-specific options each transfer backend takes; others are refused, not ignored."""


@contextmanager
def _backend_errors() -> Iterator[None]:
    from cosmos_sim.transfer.base import BackendError

    try:
        yield
    except BackendError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc


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
        from cosmos_sim.dataset import write_dataset

        path = write_dataset(run, transfer_out, out)
    _say("dataset", path)
    _say("annotations", path / "annotations.json")
    for sheet in sorted(path.glob("overlay_*.png")):
        _say("overlay sheet", sheet)


def main() -> None:
    app()
