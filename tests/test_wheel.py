"""The Dockerfile's steps without the container: build the wheels, install each into a
fresh virtualenv, start `telemed serve` outside the source tree as a non-root user, and
use it through the separately installed `telemed_client`.

Offline: the wheels build without build isolation (setuptools and cffi from the test
environment) and install with --no-index --no-deps. Each fresh environment then sees,
through a .pth file, a directory of links to exactly the installed distributions its
wheel requires (transitively, from the wheel's own metadata): a dependency missing from
pyproject.toml fails the import there, and `pip check` proves the versions fit.
"""

from __future__ import annotations

import email
import importlib.metadata
import json
import os
import zipfile
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.server import free_media_port, free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sfu", "rooms", "clinical", "vault", "conference", "recorder", "streaming", "signaling")
ADMIN_KEY = "wheel-test-admin-key"
# Not copied into the build: outputs, caches and what the wheel never holds.
SKIP = shutil.ignore_patterns(".git", ".venv", "data", "artifacts", "__pycache__", "build", "*.egg-info",
                              "_fanout*", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
                              "tests", "benchmarks", "docs")


def _run(*args: str | Path, **kwargs: object) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _required(wheel: Path) -> set[str]:
    """The installed distributions that `wheel` needs, following Requires-Dist down."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        todo = email.message_from_bytes(archive.read(meta)).get_all("Requires-Dist") or []
    seen: set[str] = set()
    while todo:
        requirement = Requirement(todo.pop())
        extras = requirement.extras or {""}
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in extras):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.distribution(name).requires or []:
            nested = Requirement(text)
            if not nested.marker or any(nested.marker.evaluate({"extra": e}) for e in {"", *requirement.extras}):
                todo.append(str(nested).split(";")[0] if nested.marker else text)
    return seen


def _venv(path: Path, wheel: Path) -> Path:
    """A virtualenv whose third-party packages are links to the test environment's
    copies of just those the wheel requires."""
    _run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    deps = path / "deps"
    deps.mkdir()
    source = Path(sysconfig.get_paths()["purelib"])
    for name in _required(wheel):
        dist = importlib.metadata.distribution(name)
        for top in {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            if (source / top).exists() and not (deps / top).exists():
                (deps / top).symlink_to(source / top)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "declared_dependencies.pth").write_text(f"{deps}\n")
    return python


def _install(python: Path, wheel: Path) -> None:
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--no-deps", wheel)
    _run(sys.executable, "-m", "pip", "--python", python, "check")


def _as_unprivileged() -> list[str]:
    """A prefix that runs a command as `nobody` when we are really root.

    It keeps CAP_DAC_READ_SEARCH, only so that it can read the Python under /root
    (pyenv) on these machines; it cannot write anything it does not own. In a user
    namespace (scripts/offline.sh as a non-root user) we already are not root."""
    if os.geteuid() != 0:
        return []
    if Path("/proc/self/uid_map").read_text().split() != ["0", "0", "4294967295"]:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to drop root")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


@pytest.fixture(scope="module")
def place() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent is 0700 to root, out of reach of `nobody`.
    path = Path(tempfile.mkdtemp(prefix="telemed-wheel-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def wheels(place: Path) -> dict[str, Path]:
    source = place / "source"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)
    out = place / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "--no-index",
         "-w", out, source, source / "clients" / "python", cwd=place)
    shutil.rmtree(source)
    found = {w.name.split("-")[0]: w for w in out.glob("*.whl")}
    assert set(found) == {"telemed", "telemed_client"}, found
    return found


def test_the_wheel_holds_every_file_the_packages_read(wheels: dict[str, Path]):
    with zipfile.ZipFile(wheels["telemed"]) as archive:
        held = set(archive.namelist())
    data = {str(path.relative_to(ROOT)) for package in PACKAGES for path in (ROOT / package).rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc", ".so", ".sha256")}
    assert data and data <= held, sorted(data - held)
    assert {"clients/web/index.html", "clients/web/room.html"} <= held
    assert [name for name in held if name.startswith("sfu/_fanout.") and name.endswith(".so")]


def test_the_wheel_installs_and_serves_from_outside_the_tree_as_non_root(place: Path, wheels: dict[str, Path]):
    server_python = _venv(place / "server-env", wheels["telemed"])
    _install(server_python, wheels["telemed"])
    client_python = _venv(place / "client-env", wheels["telemed_client"])
    _install(client_python, wheels["telemed_client"])

    # Our packages, the C step and the pages come from the wheel, not the tree.
    where = json.loads(_run(server_python, "-c", "import json, signaling.app, sfu._fanout; print(json.dumps("
                            "[sfu._fanout.__file__, str(signaling.app.WEB_ROOT / 'index.html')]))", cwd=place))
    for path in where:
        assert path.startswith(str(place / "server-env")), where
        assert Path(path).exists()

    data = place / "data"
    data.mkdir()
    prefix = _as_unprivileged()
    if prefix:
        shutil.chown(data, "nobody", "nogroup")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PATH": "/usr/bin:/bin", "TELEMED_ADMIN_KEY": ADMIN_KEY, "TELEMED_DATA_DIR": str(data),
           "TELEMED_ICE_HOSTS": "127.0.0.1", "TELEMED_MEDIA_PORT": str(free_media_port())}
    log = place / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*prefix, str(place / "server-env" / "bin" / "telemed"), "serve",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=data, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"telemed serve exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /healthz within 60 s:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                    assert json.load(answer)["status"] == "ok"
                    break
            except OSError:
                time.sleep(0.2)
        uid = next(line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("Uid:"))
        assert (uid != "0") or not prefix
        with urllib.request.urlopen(f"{url}/", timeout=10) as page:
            assert b"<html" in page.read().lower()

        # The client package alone: no server code in its environment.
        smoke = (
            "import asyncio, json, sys\n"
            "from telemed_client import create_room, fetch_token\n"
            "try:\n    import signaling\nexcept ImportError:\n    pass\n"
            "else:\n    sys.exit('server code in the client environment')\n"
            "async def main():\n"
            f"    await create_room({url!r}, 'ward', 'host-password-1', {ADMIN_KEY!r})\n"
            f"    print(json.dumps(await fetch_token({url!r}, 'ward', 'host-password-1', name='Dr A')))\n"
            "asyncio.run(main())\n")
        granted = json.loads(_run(client_python, "-c", smoke, cwd=place))
        assert granted["role"] == "host" and granted["token"]

        # The data directory holds what the server made, owned by the user it ran as.
        assert (data / "rooms.sqlite3").exists()
        if prefix:
            assert (data / "rooms.sqlite3").stat().st_uid != 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
