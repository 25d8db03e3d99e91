#!/usr/bin/env bash
# Idempotent set-up: Debian packages, then the virtualenv. Fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in redis-server:redis-server chromium:chromium janus:janus janus-pp-rec:janus-tools ip:iproute2 gcc:gcc npm:npm \
            turnserver:coturn; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair##*:}")
done
# By path: /usr/sbin is not on every PATH, and the DICOMweb plugin (for the PACS tests) is a library.
[ -x /usr/sbin/Orthanc ] || need_apt+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_apt+=(orthanc-dicomweb)
[ -x /usr/sbin/nft ] || need_apt+=(nftables)  # the TURN tests' firewall
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null
  # The tests start their own coturn; the package's service would be an unconfigured relay.
  if [[ " ${need_apt[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now coturn >/dev/null 2>&1 || true
  fi
fi

# PyAV 19 needs Python 3.12; pyenv provides it on our machines.
PY=""
for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12" $(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null); do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    PY="$candidate"; break
  fi
done
[ -n "$PY" ] || { echo "bootstrap: Python 3.12 not found" >&2; exit 1; }

stamp=".venv/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: preparing .venv with $PY" >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi

# The C fan-out step (sfu/fanout.c); rebuilt only when its source changed.
.venv/bin/python sfu/fanout_build.py

# Browser libraries the pages load from this server (hls.js for watch.html): pinned in
# clients/web/vendor/package-lock.json, installed only when the lockfile changed.
vendor=clients/web/vendor
want=$(sha256sum "$vendor/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$vendor/node_modules/.lock.sha256" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: npm ci in $vendor" >&2
  npm ci --prefix "$vendor" --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > "$vendor/node_modules/.lock.sha256"
fi
