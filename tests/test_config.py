"""Settings come from defaults, one TOML file, the environment and flags, in that order."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr

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


SECRETS = {"TELEMED_SECRET": "signing-secret-" + "s" * 32, "TELEMED_ADMIN_KEY": "admin-key-value-1",
           "TELEMED_METRICS_KEY": "metrics-key-value-1", "TELEMED_AUDIT_KEY": "audit-key-" + "a" * 32,
           "TELEMED_MASTER_KEY": "master-key-value-1", "TELEMED_PREVIOUS_MASTER_KEYS": "old-key-1,old-key-2"}


def test_secrets_are_typed_and_never_shown():
    settings = config.load(build_parser().parse_args([]), environ=SECRETS)
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for value in (*SECRETS.values(), "old-key-1"):
        assert value.split(",")[0] not in shown
    assert isinstance(settings.admin_key, SecretStr)
    assert config.reveal(settings.metrics_key) == "metrics-key-value-1"
    assert [config.reveal(k) for k in settings.previous_master_keys] == ["old-key-1", "old-key-2"]


def test_a_refused_secret_is_not_repeated_in_the_error(tmp_path):
    path = tmp_path / "telemed.toml"
    path.write_text("admin_key = 987654321\n")  # not a string
    with pytest.raises(ValueError) as refused:
        config.load(build_parser().parse_args(["--config", str(path)]), environ={})
    assert "admin_key" in str(refused.value) and "987654321" not in str(refused.value)
    with pytest.raises(ValueError) as short:
        config.load(build_parser().parse_args([]), environ={"TELEMED_AUDIT_KEY": "too-short-key"})
    assert "too-short-key" not in str(short.value)


def test_settings_check_what_they_are_given():
    """Built directly (as tests and tools do), values go through the same parsing."""
    settings = config.Settings(ice_hosts="10.0.0.5, 10.0.0.6", port="9000", metrics_room_labels="3")
    assert settings.ice_hosts == ["10.0.0.5", "10.0.0.6"] and settings.port == 9000
    for bad in ({"port": "eighty"}, {"metrics_room_labels": -1}, {"no_such_setting": 1}):
        with pytest.raises(ValueError):
            config.Settings(**bad)
