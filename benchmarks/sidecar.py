"""Sidecar round trips against raw pyzmq multipart, measured in the same run.

    python benchmarks/sidecar.py                  # RTT table + 100 clients for 30 s
    python benchmarks/sidecar.py --load-seconds 5 --transport ipc

Part 1 sends one RGB frame at a time (84×84, 640×360, 1280×704, 1920×1080) and waits for it
to come back, the way a simulator in the loop does: through the sidecar's `echo` method
(msgpack header + raw frame, decoded and checked, sent back zero-copy) with the Python
`Client`, and through a bare ROUTER that bounces multipart messages. Both servers run in
their own process; round trips alternate in random order so both see the same machine
load (the 2-core machine is shared with other work), over several fresh connection pairs
per size (one TCP connection can stay faster or slower than another all its life). It prints
RTT p50/p99 in ms, frames/s (round trips completed per second of round-trip time) and the
sidecar/raw ratios (targets: ≥ 0.90 of raw frames/s at 1280×704, p99 ≤ 2× raw).

Part 2 is a bounded load run: `--load-clients` clients (threads spread over processes)
send 640×360 frames through `echo` for `--load-seconds`, then it reports requests, errors,
timeouts, throughput and the server's own stats.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

SIZES = {
    "84x84": (84, 84),
    "640x360": (360, 640),
    "1280x704": (704, 1280),
    "1920x1080": (1080, 1920),
}
ROUND_TRIPS = {"84x84": 5000, "640x360": 3000, "1280x704": 1200, "1920x1080": 600}


@dataclass
class Config:
    transport: str = "tcp"
    scale: float = 1.0
    connections: int = 6
    load_clients: int = 100
    load_seconds: float = 30.0
    load_processes: int = 4
    skip_rtt: bool = False
    sizes: str = ",".join(SIZES)


def endpoint(transport: str, name: str) -> str:
    if transport == "ipc":
        return f"ipc://{tempfile.gettempdir()}/cosmos-sim-bench-{os.getpid()}-{name}.sock"
    return "tcp://127.0.0.1:*"


# -- servers (each in its own process) -----------------------------------------------------


def raw_server(bind: str, ready: mp.Queue) -> None:
    """A ROUTER that sends every multipart message straight back (the baseline)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(bind)
    ready.put(sock.last_endpoint.decode())
    while True:
        frames = sock.recv_multipart(copy=False)
        if len(frames) == 2 and frames[1].bytes == b"stop":
            break
        sock.send_multipart(frames, copy=False)
    sock.close(linger=0)
    ctx.term()


def sidecar_server(bind: str, ready: mp.Queue, workers: int) -> None:
    from cosmos_sim.sidecar import Server

    with tempfile.TemporaryDirectory() as data_dir:
        server = Server(bind, workers=workers, data_dir=data_dir)
        ready.put(server.endpoint)
        server.serve_forever()


def start(target, *args) -> tuple[mp.Process, str]:
    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args[:1], ready, *args[1:]), daemon=True)
    proc.start()
    return proc, ready.get(timeout=60)


# -- part 1: round trips --------------------------------------------------------------------


def round_trips(raw_addr: str, side_addr: str, frame: np.ndarray, n: int) -> dict:
    """n RTTs per path (raw, sidecar over the socket, sidecar through shared memory),
    interleaved in random order so all three see the same background load. Also returns
    the client's CPU time per round trip of each path (thread CPU clock)."""
    from cosmos_sim.sidecar import Client

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(raw_addr)
    header = b"\x00" * 32  # a small header frame, like the sidecar's

    def raw() -> None:
        sock.send_multipart([header, frame], copy=False)
        reply = sock.recv_multipart(copy=False)
        np.frombuffer(reply[1].buffer, np.uint8)

    with Client(side_addr, timeout_s=30) as client, Client(side_addr, timeout_s=30) as shm:
        shm.use_shared_memory(2 * frame.nbytes + 4096)

        def side() -> None:
            assert client.echo(rgb=frame).arrays["rgb"].shape == frame.shape

        def shared() -> None:  # the frame is copied into the region on every call
            assert shm.echo(rgb=frame).arrays["rgb"].shape == frame.shape

        paths = {"raw": raw, "side": side, "shm": shared}
        rtts = {name: np.empty(n) for name in paths}
        cpu = dict.fromkeys(paths, 0.0)
        order = np.random.default_rng(1)
        for i in range(-20, n):  # 20 warm-up round trips each
            for name in order.permutation(list(paths)):
                t0, c0 = time.perf_counter(), time.thread_time()
                paths[name]()
                if i >= 0:
                    rtts[name][i] = time.perf_counter() - t0
                    cpu[name] += time.thread_time() - c0
    sock.close()
    return {"rtt": rtts, "cpu": {k: v / n for k, v in cpu.items()}}


def rtts_over_connections(raw_addr: str, side_addr: str, frame: np.ndarray, n: int, pairs: int):
    """`round_trips` over `pairs` fresh connection sets: one TCP connection can sit in a
    slower or faster state for its whole life on a busy machine, so each path gets several."""
    parts = [round_trips(raw_addr, side_addr, frame, max(5, n // pairs)) for _ in range(pairs)]
    rtts = {k: np.concatenate([p["rtt"][k] for p in parts]) for k in parts[0]["rtt"]}
    cpu = {k: float(np.mean([p["cpu"][k] for p in parts])) for k in parts[0]["cpu"]}
    return rtts, cpu


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_per_request(raw_proc, raw_addr, side_proc, side_addr, frame, n) -> dict:
    """Server CPU per round trip of each path, from its process's CPU clock over n round
    trips run back to back (each path alone, so the clock counts only that path)."""
    from cosmos_sim.sidecar import Client

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(raw_addr)
    out = {}
    with Client(side_addr) as client, Client(side_addr) as shm:
        shm.use_shared_memory(2 * frame.nbytes + 4096)
        for name, proc, call in (
            ("raw", raw_proc, lambda: (sock.send_multipart([b"\x00" * 32, frame], copy=False),
                                     sock.recv_multipart(copy=False))),
            ("side", side_proc, lambda: client.echo(rgb=frame)),
            ("shm", side_proc, lambda: shm.echo(rgb=frame)),
        ):  # fmt: skip
            for _ in range(20):
                call()
            c0 = process_cpu_s(proc.pid)
            for _ in range(n):
                call()
            out[name] = (process_cpu_s(proc.pid) - c0) / n
    sock.close()
    return out


def python_cost_us(frame: np.ndarray, repeat: int = 2000) -> dict:
    """Per-request Python time (µs) of each protocol step of one `echo` round trip, measured
    in-process without sockets: what the sidecar adds over raw pyzmq on each side."""
    import timeit

    from cosmos_sim.sidecar.client import _REPLY_LIMITS
    from cosmos_sim.sidecar.methods import method_table
    from cosmos_sim.sidecar.protocol import (
        Limits,
        decode_arrays,
        decode_request,
        encode_reply,
        encode_request,
        unpack_header,
    )

    limits, echo = Limits(), method_table()["echo"]
    frames = encode_request(5, "echo", {"params": {}}, {"rgb": frame})
    received = [zmq.Frame(bytes(memoryview(frames[0]))), zmq.Frame(frame)]
    request = decode_request(received, limits)
    reply = encode_reply(5, {"params": {}}, request.arrays, 1, request.origins)
    header = unpack_header(reply[0], _REPLY_LIMITS)
    steps = {
        "client: encode request": lambda: encode_request(5, "echo", {"params": {}}, {"rgb": frame}),
        "server: decode request": lambda: decode_request(received, limits),
        "server: check params": lambda: echo.check(request.params, request.arrays),
        "server: encode reply": lambda: encode_reply(
            5, {"params": {}}, request.arrays, 1, request.origins
        ),
        "client: decode reply": lambda: decode_arrays(
            unpack_header(reply[0], _REPLY_LIMITS)["arrays"], [received[1].buffer], _REPLY_LIMITS
        ),
    }
    del header
    return {name: timeit.timeit(fn, number=repeat) / repeat * 1e6 for name, fn in steps.items()}


def rtt_table(cfg: Config) -> list[dict]:
    raw_proc, raw_addr = start(raw_server, endpoint(cfg.transport, "raw"))
    side_proc, side_addr = start(sidecar_server, endpoint(cfg.transport, "sidecar"), 2)
    rows = []
    try:
        rng = np.random.default_rng(0)
        for name in cfg.sizes.split(","):
            h, w = SIZES[name]
            frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            n = max(10, int(ROUND_TRIPS[name] * cfg.scale))
            rtts, client_cpu = rtts_over_connections(raw_addr, side_addr, frame, n, cfg.connections)
            row = {"size": name, "mb": frame.nbytes / 1e6, "n": rtts["raw"].size}
            for path, values in rtts.items():
                row[f"{path}_p50"] = np.percentile(values, 50) * 1e3
                row[f"{path}_p99"] = np.percentile(values, 99) * 1e3
                row[f"{path}_fps"] = values.size / values.sum()
                row[f"{path}_client_cpu_ms"] = client_cpu[path] * 1e3
            row["fps_ratio"] = row["side_fps"] / row["raw_fps"]
            row["p99_ratio"] = row["side_p99"] / row["raw_p99"]
            row["p50_ratio"] = row["side_p50"] / row["raw_p50"]
            row["shm_fps_ratio"] = row["shm_fps"] / row["raw_fps"]
            row["shm_vs_side"] = row["shm_fps"] / row["side_fps"]
            server_cpu = server_cpu_per_request(
                raw_proc, raw_addr, side_proc, side_addr, frame, max(200, n // 2)
            )
            for path, seconds in server_cpu.items():
                row[f"{path}_server_cpu_ms"] = seconds * 1e3
            rows.append(row)
            print_row(row)
    finally:
        stop_raw(raw_addr)
        stop_sidecar(side_addr)
        raw_proc.join(10)
        side_proc.join(10)
    return rows


def stop_raw(address: str) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 1000
    sock.connect(address)
    sock.send(b"stop")
    sock.close()


def stop_sidecar(address: str) -> None:
    from cosmos_sim.sidecar import Client

    with Client(address) as client:
        client.shutdown()


HEADER = (
    f"{'size':>10} {'MB':>5} {'n':>5} | {'raw p50':>7} {'p99':>6} {'f/s':>5} | "
    f"{'side p50':>8} {'p99':>6} {'f/s':>5} | {'shm p50':>7} {'p99':>6} {'f/s':>5} | "
    f"{'side/raw':>8} {'p99':>5} {'shm/raw':>7} {'shm/side':>8} | "
    f"{'CPU ms/RTT client raw/side/shm':>30} | {'server raw/side/shm':>19}"
)


def print_row(row: dict) -> None:
    cpu_c = "/".join(f"{row[f'{p}_client_cpu_ms']:.3f}" for p in ("raw", "side", "shm"))
    cpu_s = "/".join(f"{row[f'{p}_server_cpu_ms']:.3f}" for p in ("raw", "side", "shm"))
    print(
        f"{row['size']:>10} {row['mb']:>5.2f} {row['n']:>5} | {row['raw_p50']:>7.3f} "
        f"{row['raw_p99']:>6.2f} {row['raw_fps']:>5.0f} | {row['side_p50']:>8.3f} "
        f"{row['side_p99']:>6.2f} {row['side_fps']:>5.0f} | {row['shm_p50']:>7.3f} "
        f"{row['shm_p99']:>6.2f} {row['shm_fps']:>5.0f} | {row['fps_ratio']:>8.2f} "
        f"{row['p99_ratio']:>5.2f} {row['shm_fps_ratio']:>7.2f} {row['shm_vs_side']:>8.2f} | "
        f"{cpu_c:>30} | {cpu_s:>19}",
        flush=True,
    )


def print_floor(rows: list[dict]) -> None:
    """The best f/s ratio the sidecar's per-request CPU allows at each size.

    Arrays are never copied by the protocol, so what the sidecar adds per round trip does
    not depend on the frame size: it is measured where moving the bytes costs least (the
    smallest size run), as client + server CPU over raw, and set against each size's raw
    round trip."""
    small = rows[0]
    client = small["side_client_cpu_ms"] - small["raw_client_cpu_ms"]
    server = small["side_server_cpu_ms"] - small["raw_server_cpu_ms"]
    print(
        f"per-request CPU the sidecar adds (at {small['size']}): client {client:.3f} ms + "
        f"server {server:.3f} ms"
    )
    for row in rows:
        floor = row["raw_p50"] / (row["raw_p50"] + max(client + server, 0.0))
        print(
            f"  {row['size']}: raw p50 {row['raw_p50']:.3f} ms -> best f/s ratio this allows "
            f"{floor:.2f} (measured {row['fps_ratio']:.2f})"
        )


def print_python_cost(frame_shape: tuple[int, int, int]) -> None:
    cost = python_cost_us(np.zeros(frame_shape, np.uint8))
    total = sum(cost.values())
    print(f"Python per echo request at {frame_shape[1]}×{frame_shape[0]} (µs, in-process):")
    for name, us in cost.items():
        print(f"  {name:<24} {us:7.1f}")
    print(f"  {'total':<24} {total:7.1f}", flush=True)


# -- part 2: load -----------------------------------------------------------------------------


def load_process(address: str, clients: int, seconds: float, results: mp.Queue) -> None:
    from cosmos_sim.sidecar import Client, SidecarError, SidecarTimeout

    frame = np.random.default_rng(os.getpid()).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    barrier = threading.Barrier(clients)
    stats = []

    def run() -> None:
        ok = errors = timeouts = 0
        latencies = []
        try:
            client = Client(address, timeout_s=10, retries=0)
        except Exception:
            stats.append((0, 0, 1, []))
            return
        with client:
            barrier.wait(60)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    reply = client.echo(rgb=frame)
                    if reply.arrays["rgb"].shape != frame.shape:
                        errors += 1
                    else:
                        ok += 1
                        latencies.append(time.perf_counter() - t0)
                except SidecarTimeout:
                    timeouts += 1
                except SidecarError:
                    errors += 1
        stats.append((ok, errors, timeouts, latencies))

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = sum(s[0] for s in stats)
    results.put(
        (
            ok,
            sum(s[1] for s in stats),
            sum(s[2] for s in stats),
            np.concatenate([np.asarray(s[3]) for s in stats]) if ok else np.zeros(0),
        )
    )


def load_run(cfg: Config) -> dict:
    from cosmos_sim.sidecar import Client

    side_proc, address = start(sidecar_server, endpoint(cfg.transport, "load"), 4)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    per = [cfg.load_clients // cfg.load_processes] * cfg.load_processes
    per[0] += cfg.load_clients - sum(per)
    procs = [
        ctx.Process(target=load_process, args=(address, n, cfg.load_seconds, results))
        for n in per
        if n
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    parts = [results.get(timeout=cfg.load_seconds + 300) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(30)
    with Client(address) as client:
        server_stats = client.stats()
        client.shutdown()
    side_proc.join(10)
    ok = sum(p[0] for p in parts)
    latencies = np.concatenate([p[3] for p in parts])
    report = {
        "clients": cfg.load_clients,
        "seconds": cfg.load_seconds,
        "ok": ok,
        "errors": sum(p[1] for p in parts),
        "timeouts": sum(p[2] for p in parts),
        "req_per_s": ok / cfg.load_seconds,
        "mb_per_s": ok * 360 * 640 * 3 * 2 / 1e6 / cfg.load_seconds,
        "p50_ms": float(np.percentile(latencies, 50) * 1e3) if ok else None,
        "p99_ms": float(np.percentile(latencies, 99) * 1e3) if ok else None,
        "server_requests": server_stats["requests"],
        "server_errors": server_stats["errors"],
        "server_dropped": server_stats["dropped_replies"],
        "wall_s": wall,
    }
    print(
        f"load: {report['clients']} clients × {report['seconds']:.0f} s, 640×360 echo: "
        f"{report['ok']} ok, {report['errors']} errors, {report['timeouts']} timeouts; "
        f"{report['req_per_s']:.0f} req/s ({report['mb_per_s']:.0f} MB/s both ways), "
        f"RTT p50 {report['p50_ms']:.1f} ms p99 {report['p99_ms']:.1f} ms; server counted "
        f"{report['server_requests']} requests, {report['server_errors']} errors, "
        f"{report['server_dropped']} dropped replies",
        flush=True,
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=["tcp", "ipc"], default="tcp")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply round-trip counts")
    parser.add_argument(
        "--connections",
        type=int,
        default=Config.connections,
        help="fresh connection pairs per frame size",
    )
    parser.add_argument("--load-clients", type=int, default=Config.load_clients)
    parser.add_argument("--load-seconds", type=float, default=Config.load_seconds)
    parser.add_argument("--load-processes", type=int, default=Config.load_processes)
    parser.add_argument("--skip-rtt", action="store_true")
    parser.add_argument("--sizes", default=Config.sizes, help=f"comma list of {list(SIZES)}")
    cfg = Config(**vars(parser.parse_args()))
    print(
        f"sidecar vs raw pyzmq multipart, {cfg.transport}, zmq {zmq.zmq_version()}, "
        f"pyzmq {zmq.pyzmq_version()}, {os.cpu_count()} CPUs"
    )
    if not cfg.skip_rtt:
        print_python_cost((704, 1280, 3))
        print(HEADER)
        rows = rtt_table(cfg)
        print_floor(rows)
    if cfg.load_seconds > 0 and cfg.load_clients > 0:
        load_run(cfg)


if __name__ == "__main__":
    main()
