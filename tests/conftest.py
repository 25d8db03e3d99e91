import subprocess
import sys
from pathlib import Path

# The C fan-out step must match its source before anything imports sfu: a merge or a
# checkout that changed sfu/fanout.c or fanout.h would otherwise test a stale build.
# Cheap when nothing changed (scripts/bootstrap.sh runs the same script).
subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "sfu" / "fanout_build.py")],
               check=True, stdout=subprocess.DEVNULL)

pytest_plugins = ["tests.network_guard", "tests.server", "tests.redis_server", "tests.orthanc", "tests.cluster"]
