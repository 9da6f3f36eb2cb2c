"""What scripts/tls-conformance and scripts/smuggling-tools share: ringgate built and started on
loopback with certificates made by `ringgate ca`, a free port, and a virtual environment for the
third-party tools' Python packages."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_TOOLS = ROOT.parent / "shared" / "tools"


def say(*a):
    print(*a, flush=True)


def venv_python(work, packages):
    """A virtual environment under `work` with `packages` installed (once)."""
    py = work / "venv" / "bin" / "python"
    if py.exists():
        return py
    say(f"{work.name}: creating {work / 'venv'}")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    return py


def ringgate_bin():
    """The proxy built from this checkout (debug; `cargo build` first, so never a stale one),
    in $CARGO_TARGET_DIR when set."""
    subprocess.run(["cargo", "build", "-q", "-p", "ringgate"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "debug" / "ringgate"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pki(rg, d):
    """A CA, an RSA and an ECDSA server certificate and an RSA client certificate, made by
    `ringgate ca` as a user would."""
    ca = d / "ca"
    run = lambda *a: subprocess.run([str(rg), *a], check=True, capture_output=True)
    run("ca", "init", str(ca), "--cn", "Test CA", "--key-type", "rsa2048")
    run("ca", "-d", str(ca), "issue", "server", "--cn", "localhost", "--key-type", "rsa2048")
    run("ca", "-d", str(ca), "issue", "server", "--cn", "ecdsa.localhost",
        "--san", "DNS:localhost", "--key-type", "p256")
    run("ca", "-d", str(ca), "issue", "client", "--cn", "client", "--key-type", "rsa2048")
    return {
        "rsa": (ca / "certs/localhost.crt", ca / "private/localhost.key"),
        "ecdsa": (ca / "certs/ecdsa.localhost.crt", ca / "private/ecdsa.localhost.key"),
        "client": (ca / "certs/client.crt", ca / "private/client.key"),
        "ca": ca / "ca.crt",
    }


def wait_listening(port, proc, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Ringgate:
    """`ringgate run -c CONFIG` in `d`, its log in `d/ringgate.log`, stopped on exit."""

    def __init__(self, rg, d, config, ports):
        self.d = d
        path = d / "ringgate.toml"
        path.write_text(config)
        self.log = open(d / "ringgate.log", "w")
        self.proc = subprocess.Popen([str(rg), "run", "-c", str(path)],
                                     stdout=self.log, stderr=self.log)
        self.ok = all(wait_listening(p, self.proc) for p in ports)

    def log_text(self):
        return (self.d / "ringgate.log").read_text()

    def alive(self):
        return self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
