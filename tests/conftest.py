import subprocess
import sys
from pathlib import Path

import pytest

# The C steps (sfu/_fanout) must match their sources before anything imports sfu: a
# merge or a checkout that changed a .c or .h there would otherwise test a stale build.
# Cheap when nothing changed (scripts/bootstrap.sh runs the same script).
subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "sfu" / "fanout_build.py")],
               check=True, stdout=subprocess.DEVNULL)

pytest_plugins = ["tests.network_guard", "tests.server", "tests.redis_server", "tests.orthanc", "tests.cluster"]

# Chromium reacts to any network interface that comes or goes: it aborts page loads
# (ERR_NETWORK_CHANGED) and fires "online". So the browser tests and the tests that
# create interfaces (veth pairs for client namespaces) never run at the same time on
# the two workers: one xdist group takes them all. Every other file is a group of its
# own, as `--dist loadfile` would make it (module-scoped fixtures start once).
NETWORK_FILES = {"test_interop_gstreamer.py", "test_resume_netns.py", "test_send_buffer_full.py",
                 "test_turn_relay.py"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        network = "browser" in item.path.parts or item.path.name in NETWORK_FILES
        group = "network" if network else str(item.path.relative_to(config.rootpath))
        item.add_marker(pytest.mark.xdist_group(group))
