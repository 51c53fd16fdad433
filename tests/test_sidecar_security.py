"""Where the sidecar may listen, CURVE refusal and acceptance, and the `serve` command."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq

from cosmos_sim.sidecar import BindRefused, Client, Server, SidecarTimeout, keygen
from cosmos_sim.sidecar.security import check_bind, is_local_endpoint

COSMOS_SIM = shutil.which("cosmos-sim", path=str(Path(sys.executable).parent)) or "cosmos-sim"


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("ipc:///tmp/x.sock", True),
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.4:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_only_ipc_and_loopback_are_local(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_a_network_bind_needs_curve(tmp_path):
    with pytest.raises(BindRefused, match="keygen"):
        Server("tcp://0.0.0.0:5555", data_dir=tmp_path)
    with pytest.raises(BindRefused, match="transport"):
        check_bind("udp://127.0.0.1:5555", curve=True)
    check_bind("tcp://0.0.0.0:5555", curve=True)  # allowed once CURVE is on


@pytest.fixture
def keys(tmp_path) -> Path:
    keys = tmp_path / "keys"
    keygen(keys, "robot1")
    keygen(keys, "robot2")
    return keys


def test_keygen_layout_and_refusal_to_overwrite(keys):
    assert (keys / "server.key").is_file() and (keys / "server.key_secret").is_file()
    assert sorted(p.name for p in (keys / "authorized_clients").iterdir()) == [
        "robot1.key",
        "robot2.key",
    ]
    assert oct((keys / "clients" / "robot1.key_secret").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        keygen(keys, "robot1")


def test_curve_accepts_authorised_clients_and_refuses_others(keys, tmp_path):
    with Server("tcp://127.0.0.1:*", curve_keys=keys, data_dir=tmp_path) as srv:
        assert srv.curve
        with Client(
            srv.endpoint,
            curve_server_key=keys / "server.key",
            curve_client_cert=keys / "clients" / "robot1.key_secret",
        ) as c:
            assert c.server_info["curve"] is True
            assert c.echo(a=np.arange(3)).arrays["a"].tolist() == [0, 1, 2]
        with pytest.raises(SidecarTimeout):  # no encryption: the handshake never completes
            Client(srv.endpoint, timeout_s=0.5, retries=0)
        stranger = tmp_path / "stranger"
        keygen(stranger, "eve")  # a valid keypair the server does not know
        with pytest.raises(SidecarTimeout):
            Client(
                srv.endpoint,
                timeout_s=0.5,
                retries=0,
                curve_server_key=keys / "server.key",
                curve_client_cert=stranger / "clients" / "eve.key_secret",
            )
        # refused clients got no session and did not hurt the server
        with Client(
            srv.endpoint,
            curve_server_key=keys / "server.key",
            curve_client_cert=keys / "clients" / "robot2.key_secret",
        ) as c:
            assert c.stats()["sessions"] == 1  # robot2: robot1 closed, so its session ended


def test_curve_keys_folder_must_hold_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="keygen"):
        Server("tcp://127.0.0.1:*", curve_keys=tmp_path, data_dir=tmp_path)


def test_ipc_socket_is_private_to_its_owner(tmp_path):
    path = tmp_path / "s.sock"
    with Server(f"ipc://{path}", data_dir=tmp_path):
        assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_serve_command_stops_cleanly_on_sigterm(tmp_path):
    sock_path = tmp_path / "serve.sock"
    proc = subprocess.Popen(
        [
            COSMOS_SIM,
            "serve",
            "--bind",
            f"ipc://{sock_path}",
            "--data-dir",
            str(tmp_path),
            "--workers",
            "2",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        with Client(f"ipc://{sock_path}", timeout_s=30) as c:  # waits while it starts
            assert "controls" in c.server_info["methods"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert "listening on ipc://" in err and "stopped" in err
    assert not sock_path.exists()


def test_serve_refuses_a_network_bind_without_keys(tmp_path):
    out = subprocess.run(
        [COSMOS_SIM, "serve", "--bind", "tcp://0.0.0.0:5599"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 2 and "--curve-keys" in out.stderr


def test_zmq_has_curve():
    assert zmq.has("curve")
