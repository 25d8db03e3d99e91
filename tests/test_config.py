"""Settings come from defaults, one TOML file, the environment and flags, in that order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from signaling import config
from signaling.cli import build_parser


def test_layers_override_in_order(tmp_path):
    path = tmp_path / "telemed.toml"
    path.write_text('port = 9000\nice_hosts = ["10.0.0.5"]\ndata_dir = "/srv/telemed"\n')
    args = build_parser().parse_args(["--config", str(path), "--port", "9100"])
    settings = config.load(args, environ={"TELEMED_PORT": "9050", "TELEMED_PUBLIC_IP": "203.0.113.9",
                                          "TELEMED_ICE_SERVERS": '[{"urls": "stun:stun.example.org"}]'})
    assert settings.port == 9100                      # flag beats env beats file
    assert settings.ice_hosts == ["10.0.0.5"]          # file
    assert settings.public_ip == "203.0.113.9"         # env
    assert settings.ice_servers == [{"urls": "stun:stun.example.org"}]
    assert settings.data_dir == "/srv/telemed"
    assert config.load(build_parser().parse_args([]), environ={}).port == 8080


@pytest.mark.parametrize("env", [{"TELEMED_PORT": "eighty"}, {"TELEMED_ICE_SERVERS": "[1, 2]"},
                                 {"TELEMED_TLS_CERT": "cert.pem"}, {"TELEMED_ICE_SERVERS": "{"},
                                 {"TELEMED_LIVE_SIZE": "720p"}, {"TELEMED_LIVE_X264_PRESET": "placebo"},
                                 {"TELEMED_LIVE_FPS": "fast"}])
def test_bad_settings_are_refused(env):
    with pytest.raises(ValueError):
        config.load(build_parser().parse_args([]), environ=env)


def test_help_explains_every_setting():
    out = subprocess.run([sys.executable, "-m", "signaling", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for name in ("--ice-hosts", "--public-ip", "--ice-servers", "--tls-cert", "--data-dir", "TELEMED_PORT"):
        assert name in out


def test_bad_config_exits_with_a_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "signaling", "--port", "nope"], capture_output=True, text=True)
    assert result.returncode != 0 and "bad configuration" in result.stderr
