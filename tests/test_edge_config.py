"""The edge's settings: parsed from the environment, refused when malformed, secrets
out of repr; `telemed serve` runs through the connection-capping runner and stops
cleanly on SIGTERM."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import pytest

from signaling import config
from signaling.cli import build_parser
from tests.processes import serving
from tests.server import free_media_port, free_port

ROOT = Path(__file__).resolve().parents[1]


def load(env: dict[str, str]) -> config.Settings:
    return config.load(build_parser().parse_args([]), environ=env)


def test_edge_settings_from_the_environment():
    settings = load({"TELEMED_MAX_JSON_BODY": "1000", "TELEMED_BODY_TIMEOUT": "2.5",
                     "TELEMED_WS_ORIGINS": "https://portal.example.org, http://10.0.0.5:8080",
                     "TELEMED_TRUSTED_PROXIES": "10.0.0.1,192.168.0.0/16",
                     "TELEMED_METRICS_LISTEN": "127.0.0.1:9100", "TELEMED_METRICS_KEY": "k" * 32,
                     "TELEMED_WHIP_SESSIONS_PER_TOKEN": "2"})
    assert settings.max_json_body == 1000 and settings.body_timeout == 2.5
    assert settings.ws_origins == ["https://portal.example.org", "http://10.0.0.5:8080"]
    assert settings.trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]
    assert settings.metrics_listen == "127.0.0.1:9100" and settings.whip_sessions_per_token == 2
    assert "k" * 32 not in repr(settings)
    defaults = load({})
    assert defaults.metrics_key is None and defaults.metrics_listen is None and defaults.trusted_proxies == []
    assert defaults.ws_join_timeout == 10 and defaults.whip_connect_timeout < 30


@pytest.mark.parametrize("env", [
    {"TELEMED_WS_ORIGINS": "portal.example.org"}, {"TELEMED_WS_ORIGINS": "https://x.org/path"},
    {"TELEMED_TRUSTED_PROXIES": "proxy.local"}, {"TELEMED_METRICS_LISTEN": "9100"},
    {"TELEMED_MAX_CONNECTIONS_PER_ADDRESS": "0"}, {"TELEMED_HEADER_TIMEOUT": "-1"},
    {"TELEMED_WS_JOIN_TIMEOUT": "nan"}, {"TELEMED_MAX_SDP_BODY": "big"},
])
def test_malformed_edge_settings_are_refused(env):
    with pytest.raises(ValueError):
        load(env)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def answers(url: str) -> bool:
    try:
        get(url)
        return True
    except OSError:
        return False


def test_serve_uses_the_edge_and_stops_on_sigterm(tmp_path):
    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "signaling", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(tmp_path / "data"), "--metrics-listen", f"127.0.0.1:{metrics_port}",
            "--max-connections-per-address", "50", "--media-port", str(free_media_port())]
    with serving("telemed", args, tmp_path / "serve.log", lambda: answers(f"{base}/healthz"), cwd=ROOT,
                 env={**os.environ, "PYTHONPATH": str(ROOT)}) as proc:
        status, headers, _ = get(f"{base}/")
        assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
        assert get(f"{base}/metrics")[0] == 403
        status, _, body = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and b"telemed_rooms 0" in body
        proc.terminate()
        assert proc.wait(timeout=20) == 0, (tmp_path / "serve.log").read_text()[-2000:]
