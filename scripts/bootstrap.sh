#!/usr/bin/env bash
# Idempotent set-up for `./telemed MODE`; fast when nothing changed.
#   serve: what the server needs at run time: Python 3.12, the serve lock
#          (requirements-serve.txt), gcc for the C fan-out step. No root unless one
#          of those is missing, and no test tools.
#   test, bench: also the test tools (Debian's redis, chromium, firefox-esr, janus, orthanc) and the
#          full lock (requirements.txt), and the vendored browser libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-serve}"

need_apt=()
# gcc builds sfu/fanout.c. npm (hls.js for the trainee page) is installed for the tests;
# `serve` uses it when it is there and otherwise says what the trainee page lacks.
pairs=(gcc:gcc)
if [ "$mode" != serve ]; then
  pairs+=(redis-server:redis-server chromium:chromium firefox-esr:firefox-esr janus:janus janus-pp-rec:janus-tools ip:iproute2 npm:npm
          turnserver:coturn)
  # By path: /usr/sbin is not on every PATH, and the DICOMweb plugin (for the PACS tests) is a library.
  [ -x /usr/sbin/Orthanc ] || need_apt+=(orthanc)
  [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_apt+=(orthanc-dicomweb)
  [ -x /usr/sbin/nft ] || need_apt+=(nftables)  # the TURN tests' firewall
  # Stock GStreamer as a third-party WHIP/WHEP client (tests/test_interop_gstreamer.py):
  # webrtcbin, libnice, the VP8/H264 encoders, payloaders and decoders, driven from the
  # system python3 through PyGObject (clients/gstreamer/whip.py).
  pairs+=(gst-inspect-1.0:gstreamer1.0-tools)
  for plugin in webrtc:gstreamer1.0-plugins-bad nice:gstreamer1.0-nice x264:gstreamer1.0-plugins-ugly \
                vpx:gstreamer1.0-plugins-good libav:gstreamer1.0-libav videotestsrc:gstreamer1.0-plugins-base; do
    compgen -G "/usr/lib/*/gstreamer-1.0/libgst${plugin%%:*}.so" >/dev/null || need_apt+=("${plugin##*:}")
  done
  [ -e /usr/lib/python3/dist-packages/gi/__init__.py ] || need_apt+=(python3-gi)
  compgen -G "/usr/lib/*/girepository-1.0/GstWebRTC-1.0.typelib" >/dev/null || need_apt+=(gir1.2-gst-plugins-bad-1.0)
fi
for pair in "${pairs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair##*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "bootstrap: as root, run: apt-get install ${need_apt[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}" >/dev/null
  # The tests start their own coturn; the package's service would be an unconfigured relay.
  if [[ " ${need_apt[*]} " == *" coturn "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now coturn >/dev/null 2>&1 || true
  fi
fi

# PyAV 19 needs Python 3.12; pyenv provides it on our machines.
find_python() {
  PY=""
  for candidate in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python3.12" $(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null); do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
  [ -n "$PY" ] || { echo "bootstrap: Python 3.12 not found" >&2; exit 1; }
}

# The full lock serves every mode; the serve lock (a subset) only `serve`.
full=".venv/.requirements.sha256"
served=".venv/.requirements-serve.sha256"
want_full=$(sha256sum requirements.txt | cut -d' ' -f1)
want_serve=$(sha256sum requirements-serve.txt | cut -d' ' -f1)
have() { [ -x .venv/bin/python ] && [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
if ! have "$full" "$want_full" && { [ "$mode" != serve ] || ! have "$served" "$want_serve"; }; then
  lock=requirements.txt; stamp=$full; want=$want_full
  [ "$mode" = serve ] && { lock=requirements-serve.txt; stamp=$served; want=$want_serve; }
  if [ ! -x .venv/bin/python ]; then
    find_python
    echo "bootstrap: creating .venv with $PY" >&2
    "$PY" -m venv .venv
  fi
  echo "bootstrap: installing $lock into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check -r "$lock"
  echo "$want" > "$stamp"
fi

# The C fan-out step (sfu/fanout.c), in place; rebuilt only when its source changed.
# (An installed wheel has it built by setup.py's cffi_modules instead.)
.venv/bin/python sfu/fanout_build.py

# Browser libraries the pages load from this server (hls.js for watch.html): pinned in
# clients/web/vendor/package-lock.json, installed only when the lockfile changed.
vendor=clients/web/vendor
want=$(sha256sum "$vendor/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$vendor/node_modules/.lock.sha256" 2>/dev/null)" != "$want" ]; then
  if [ "$mode" = serve ] && ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: npm not found: the trainee page (watch.html) cannot load its player without hls.js" >&2
    exit 0
  fi
  echo "bootstrap: npm ci in $vendor" >&2
  npm ci --prefix "$vendor" --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > "$vendor/node_modules/.lock.sha256"
fi
