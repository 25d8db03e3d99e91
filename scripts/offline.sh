#!/usr/bin/env bash
# Runs a command in a network namespace that has only loopback, so that anything trying to
# reach outside the machine fails at once (ENETUNREACH) instead of silently timing out.
# Root uses a plain network namespace; others try a user namespace; failing both, the
# command runs as it is and says so (tests/network_guard.py still refuses in-process).
set -euo pipefail
inner='ip link set lo up && export TELEMED_OFFLINE=1 && exec "$@"'
for flags in "-n" "-rn"; do
  if unshare $flags -- true 2>/dev/null; then
    exec unshare $flags -- bash -c "$inner" bash "$@"
  fi
done
echo "offline: cannot create a network namespace here; running with the host network" >&2
exec "$@"
