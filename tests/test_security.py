"""Security: loopback by default, CURVE for anything else, shutdown only from this
machine, and model/weights files never unpickled into arbitrary objects.

(CURVE refusing unknown keys and plain clients, and a non-loopback bind refused without
keys at the command line, are in tests/test_daemon.py.)
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import zmq
import zmq.auth

from nst_client import protocol
from nst_client.client import Client
from nst_client.errors import DaemonError
from nst_client.protocol import HelloRequest, Result, ShutdownRequest, StatusRequest
from nst_core.errors import ModelFormatError
from nst_core.styles import import_style
from nst_core.transformer_net import load_style_model
from nst_core.vgg import VGGFeatures
from nst_core.weights import import_weights
from nst_daemon.server import Server, ServerConfig, StartupError
from nst_daemon.sockets import is_loopback_endpoint

from daemon_helpers import DaemonProcess, free_port, noise_image, save_random_style


def _address(hex_ip: str) -> str:
    """An address of /proc/net/tcp (8 hex digits) or tcp6 (32): 32-bit words in the
    machine's byte order."""
    words = [bytes.fromhex(hex_ip[i : i + 8]) for i in range(0, len(hex_ip), 8)]
    raw = b"".join(w[::-1] if sys.byteorder == "little" else w for w in words)
    ip = ipaddress.ip_address(raw)
    return str(ip) if ip.version == 4 else f"[{ip}]"


def listening_addresses(pid: int) -> set[str]:
    """``ip:port`` of the TCP sockets ``pid`` listens on, IPv4 and IPv6 (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():  # a kernel without IPv6
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                ip_hex, port_hex = local.split(":")
                found.add(f"{_address(ip_hex)}:{int(port_hex, 16)}")
    return found


def test_listening_addresses_sees_ipv4_and_ipv6_listeners() -> None:
    """Guard for the test below: listeners on 127.0.0.1, ::1 and :: are all seen."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    wanted, sockets = set(), []
    try:
        for family, host, shown in [
            (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
            (socket.AF_INET6, "::1", "[::1]"),
            (socket.AF_INET6, "::", "[::]"),
        ]:
            sock = socket.socket(family)
            sockets.append(sock)
            try:
                sock.bind((host, 0))
            except OSError:
                pytest.skip(f"cannot bind {host} here")
            sock.listen()
            wanted.add(f"{shown}:{sock.getsockname()[1]}")
        assert wanted <= listening_addresses(os.getpid())
    finally:
        for sock in sockets:
            sock.close()


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (the route to a public IP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


# --------------------------------------------------------------------------- binding


def test_default_endpoint_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NST_ENDPOINT", raising=False)
    assert protocol.default_endpoint() == protocol.DEFAULT_ENDPOINT
    assert is_loopback_endpoint(protocol.DEFAULT_ENDPOINT)
    assert ServerConfig().endpoint == protocol.DEFAULT_ENDPOINT


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:1", True),
        ("tcp://127.1.2.3:1", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:1", True),
        ("ipc:///tmp/nst.sock", True),
        ("tcp://*:1", False),
        ("tcp://0.0.0.0:1", False),
        ("tcp://[::]:1", False),
        ("tcp://192.0.2.2:1", False),
        ("tcp://eth0:1", False),
        ("tcp://example.org:1", False),
    ],
)
def test_which_endpoints_count_as_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback_endpoint(endpoint) is loopback


@pytest.mark.parametrize("host", ["*", "0.0.0.0", "eth0", "[::]"])
def test_non_loopback_bind_without_keys_is_refused(host: str) -> None:
    endpoint = f"tcp://{host}:{free_port()}"
    server = Server(ServerConfig(endpoint=endpoint))
    try:
        with pytest.raises(StartupError, match="reachable from other machines.*CURVE"):
            server.bind()
        assert server.router is None  # nothing was bound
    finally:
        server.close()


def test_curve_without_client_keys_is_refused(tmp_path: Path) -> None:
    _, secret = zmq.auth.create_certificates(tmp_path, "server")
    config = ServerConfig(endpoint=f"tcp://0.0.0.0:{free_port()}", curve_secret=Path(secret))
    server = Server(config)
    try:
        with pytest.raises(StartupError, match="--curve-clients"):
            server.bind()
    finally:
        server.close()


def test_daemon_listens_on_loopback_only(tmp_path: Path) -> None:
    """Its only listening socket, IPv4 or IPv6, is 127.0.0.1 on its port."""
    save_random_style(tmp_path, "rand")
    with DaemonProcess(tmp_path) as daemon:
        port = daemon.endpoint.rsplit(":", 1)[1]
        assert listening_addresses(daemon.pid) == {f"127.0.0.1:{port}"}


# --------------------------------------------------------------------------- shutdown


@pytest.fixture
def curve_daemon(tmp_path: Path) -> Iterator[tuple[DaemonProcess, dict, str]]:
    """A daemon on all interfaces with CURVE; yields it, client keys, a non-loopback IP."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public_file, server_secret_file = zmq.auth.create_certificates(keys, "server")
    client_public_file, client_secret_file = zmq.auth.create_certificates(keys, "client")
    (allowed / "client.key").write_bytes(Path(client_public_file).read_bytes())
    client_keys = {
        "curve_server_key": zmq.auth.load_certificate(server_public_file)[0],
        "curve_client_keys": zmq.auth.load_certificate(client_secret_file),
    }
    port = free_port()
    daemon = DaemonProcess(
        tmp_path,
        f"tcp://0.0.0.0:{port}",
        ["--curve-secret", server_secret_file, "--curve-clients", str(allowed)],
    )
    daemon.launch()
    try:
        yield daemon, client_keys, f"tcp://{address}:{port}"
    finally:
        daemon.kill()


def test_shutdown_is_refused_from_another_machine(curve_daemon) -> None:
    daemon, keys, remote = curve_daemon
    local = remote.replace(remote.split("//")[1].split(":")[0], "127.0.0.1")
    with Client(remote, autostart=False, timeout=60, **keys) as client:
        assert client.request(HelloRequest()).TYPE == "hello"  # waits for the daemon to start
        with pytest.raises(DaemonError) as caught:
            client.request(ShutdownRequest())
        assert caught.value.code == "forbidden"
        assert "this machine" in caught.value.message
        assert client.request(StatusRequest()).TYPE == "status"  # still serving
    with Client(local, autostart=False, timeout=10, **keys) as client:
        assert client.request(ShutdownRequest()).TYPE == "ok"
    assert daemon.proc is not None and daemon.proc.wait(timeout=30) == 0


# --------------------------------------------------------------------------- pickles


class Exploit:
    """Unpickling this creates ``marker``: what a malicious model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def malicious_file(path: Path, marker: Path, zip_format: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"conv1.conv2d.weight": Exploit(marker), "0.weight": Exploit(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_the_malicious_file_is_live(tmp_path: Path, zip_format: bool) -> None:
    """Guard for the tests below: a full unpickle of such a file does create the marker."""
    marker = tmp_path / "pwned"
    path = malicious_file(tmp_path / "evil.pth", marker, zip_format)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("zip_format", [True, False])
def test_loaders_refuse_malicious_pickles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip_format: bool
) -> None:
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))
    marker = tmp_path / "pwned"
    evil = malicious_file(tmp_path / "evil.pth", marker, zip_format)
    loaders = [
        load_style_model,
        import_style,
        import_weights,
        lambda p: VGGFeatures("vgg16", weights=p),
    ]
    for load in loaders:
        with pytest.raises(ModelFormatError, match="evil.pth"):
            load(evil)
        assert not marker.exists(), load
    assert not (tmp_path / "home" / "styles").exists() or not list(
        (tmp_path / "home" / "styles").iterdir()
    )


def test_daemon_refuses_malicious_style_and_weights(tmp_path: Path) -> None:
    """Pickles placed as a user style and as the VGG weights: clear errors naming the
    files, nothing created, and the daemon keeps serving its good style."""
    home, marker = tmp_path / "home", tmp_path / "pwned"
    save_random_style(home, "rand")
    style = malicious_file(home / "styles" / "evil.safetensors", marker)
    weights = malicious_file(home / "weights" / "vgg16_features.safetensors", marker)
    image = noise_image(32, 32, 3, seed=1)
    env = {"TORCH_HOME": str(tmp_path / "torch")}
    with DaemonProcess(home, env=env) as daemon, daemon.client(timeout=60) as client:
        with pytest.raises(DaemonError) as caught:
            client.stylize(image, style="evil")
        assert caught.value.code == "bad_model" and str(style) in caught.value.message
        with pytest.raises(DaemonError) as caught:
            client.stylize(image, method="gatys", style_image=image, params={"iterations": 1})
        assert caught.value.code == "bad_model" and str(weights) in caught.value.message
        assert "evil" not in [s.name for s in client.styles()]
        assert client.stylize(image, style="rand").image.width == 32
    assert not marker.exists()


def test_a_client_cannot_cancel_another_clients_job(tmp_path: Path) -> None:
    """Job ids are visible in ``status``; only the client that submitted a job stops it."""
    save_random_style(tmp_path, "rand")
    image = noise_image(400, 400, 3, seed=1)
    with DaemonProcess(tmp_path) as daemon, daemon.client() as owner, daemon.client() as other:
        events = owner.submit(image, style="rand", params={"tile_size": 256})
        job_id = next(events).job_id
        with pytest.raises(DaemonError) as caught:
            other.cancel(job_id)
        assert caught.value.code == "unknown_job"
        assert [e for e in events if isinstance(e, Result)]  # ran to the end
        events = owner.submit(image, style="rand", params={"tile_size": 256})
        job_id = next(events).job_id
        owner.cancel(job_id)
        with pytest.raises(DaemonError) as caught:
            list(events)
        assert caught.value.code == "cancelled"
