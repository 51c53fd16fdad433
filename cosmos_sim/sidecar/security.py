"""Where the sidecar may listen, and ZeroMQ CURVE keys for when it listens on a network.

The server binds ipc or loopback by default. A network address is refused unless CURVE is
configured: the server then encrypts every connection and accepts only the client public
keys found in `<keys>/authorized_clients/`.

Key folder layout (written by `cosmos-sim keygen DIR`):

    DIR/server.key                  server public key (give it to clients)
    DIR/server.key_secret           server secret key (stays on the server)
    DIR/clients/NAME.key_secret     a client's keypair (give it to that client only)
    DIR/authorized_clients/NAME.key a client's public key (the server accepts it)
"""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

DEFAULT_BIND = "tcp://127.0.0.1:5555"
SERVER_CERT = "server"
CLIENTS_DIR = "clients"
AUTHORIZED_DIR = "authorized_clients"


class BindRefused(ValueError):
    """The bind address is not allowed with the current security settings."""


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (127.0.0.0/8, ::1)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise BindRefused(
            f"bind address {endpoint!r} has no transport; use ipc:///path or tcp://127.0.0.1:PORT"
        )
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        raise BindRefused(f"bind transport {scheme!r} is not supported; use ipc or tcp")
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # '*', an interface name or a host name: all may reach the network
        return False


def check_bind(endpoint: str, curve: bool) -> None:
    """Refuse a network bind without CURVE (the error says how to fix it)."""
    if not is_local_endpoint(endpoint) and not curve:
        raise BindRefused(
            f"refusing to bind {endpoint!r} without encryption: it is not ipc or loopback. "
            "Create keys with `cosmos-sim keygen KEYS` and pass `--curve-keys KEYS`, or bind "
            "ipc:///path or tcp://127.0.0.1:PORT"
        )


@dataclass(frozen=True)
class CurveKeys:
    """The server's keypair and the folder of client public keys it accepts."""

    public: bytes
    secret: bytes
    authorized_dir: Path

    @classmethod
    def load(cls, keys_dir: str | Path) -> CurveKeys:
        keys_dir = Path(keys_dir)
        secret_file = keys_dir / f"{SERVER_CERT}.key_secret"
        if not secret_file.is_file():
            raise FileNotFoundError(
                f"{secret_file} not found; create the keys with `cosmos-sim keygen {keys_dir}`"
            )
        public, secret = zmq.auth.load_certificate(secret_file)
        if secret is None:
            raise ValueError(f"{secret_file} holds no secret key; re-run `cosmos-sim keygen`")
        authorized = keys_dir / AUTHORIZED_DIR
        if not authorized.is_dir() or not any(authorized.glob("*.key")):
            raise FileNotFoundError(
                f"{authorized} has no client public keys (*.key): no client could connect; "
                f"add one with `cosmos-sim keygen {keys_dir} --client NAME`"
            )
        return cls(public=public, secret=secret, authorized_dir=authorized)


def keygen(keys_dir: str | Path, client: str = "client") -> dict[str, Path]:
    """Create the server keypair (once) and a client keypair, authorising the client."""
    if not client or "/" in client or client.startswith("."):
        raise ValueError(f"client name {client!r}: use a plain name such as 'robot1'")
    keys_dir = Path(keys_dir)
    clients = keys_dir / CLIENTS_DIR
    authorized = keys_dir / AUTHORIZED_DIR
    for folder in (keys_dir, clients, authorized):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    server_public = keys_dir / f"{SERVER_CERT}.key"
    if not server_public.exists():
        zmq.auth.create_certificates(keys_dir, SERVER_CERT)
    client_secret = clients / f"{client}.key_secret"
    if client_secret.exists():
        raise FileExistsError(
            f"{client_secret} exists; pick another --client name (nothing was overwritten)"
        )
    public_file, secret_file = zmq.auth.create_certificates(clients, client)
    shutil.copy(public_file, authorized / f"{client}.key")
    Path(public_file).unlink()
    for path in (keys_dir / f"{SERVER_CERT}.key_secret", secret_file):
        Path(path).chmod(0o600)
    return {
        "server_public": server_public,
        "client_secret": Path(secret_file),
        "authorized": authorized / f"{client}.key",
    }


def apply_client_curve(socket: zmq.Socket, server_public: bytes, client_cert: str | Path) -> None:
    """Configure a client socket for CURVE from the server's public key and its own keypair."""
    public, secret = zmq.auth.load_certificate(client_cert)
    if secret is None:
        raise ValueError(f"{client_cert} holds no secret key; pass the client's .key_secret file")
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def load_public_key(path: str | Path) -> bytes:
    public, _ = zmq.auth.load_certificate(path)
    return public
