"""Server settings: embedded defaults, then one optional TOML file, then environment
variables, then command-line flags; each layer overrides the one before.

``Settings`` is a pydantic-settings model: each value is parsed and checked by
``_coerce`` (one place for a setting's rules, whatever layer it came from), then
type-checked. Secrets are ``SecretStr``: out of ``repr``, logs and error messages;
``reveal`` hands the plain value to the one place that uses it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rooms.oidc import DEFAULT_ROLE_MAP, parse_role_map

from .origins import normalize as normalize_origin


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    ice_hosts: list[str] = []
    public_ip: str | None = None
    ice_servers: list[dict] = []
    data_dir: str = "data"
    room_store: str = "sqlite"
    admin_key: SecretStr | None = None
    secret: SecretStr | None = None
    token_ttl: int = 600
    log_level: str = "info"
    pacs_url: str | None = None
    pacs_username: str | None = None
    pacs_password: SecretStr | None = None
    pacs_timeout: float = 30.0
    # live teaching: the composited program and LL-HLS (streaming/)
    live_size: str = "1280x720"
    live_fps: int = 30
    live_video_kbps: int = 2500
    live_x264_preset: str = "veryfast"
    live_link_ttl: int = 4 * 3600
    live_requests_per_second: float = 20.0
    # --- credentials (issue 8): session age and an external identity provider ---
    max_session_age: int = 12 * 3600
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_role_claim: str = "role"
    oidc_role_map: dict = DEFAULT_ROLE_MAP
    # login lockout (trust-lockout)
    login_max_failures: int = 5
    login_room_max_failures: int = 20
    login_in_flight: int = 2
    password_workers: int = 2
    # encryption at rest (vault/) and recording (recorder/)
    master_key: SecretStr | None = None
    master_key_file: str | None = None
    previous_master_keys: list[SecretStr] = []
    recording_retention_days: float = 0.0
    # replay (signaling/recording_media.py)
    recording_link_ttl: int = 1800
    # the HTTP edge (trust-edge): bodies, origins, metrics, connection caps, WHIP/WHEP reaping
    max_json_body: int = 64 * 1024
    max_sdp_body: int = 128 * 1024
    body_timeout: float = 30.0
    header_timeout: float = 15.0
    max_connections_per_address: int = 200
    ws_join_timeout: float = 10.0
    ws_origins: list[str] = []
    metrics_key: SecretStr | None = None
    metrics_listen: str | None = None
    trusted_proxies: list[str] = []
    whip_connect_timeout: float = 20.0
    whip_sessions_per_token: int = 4
    # WHIP/WHEP for third-party encoders and players (issue 16)
    whip_origins: list[str] = []
    # audit trail (trust-audit)
    audit_key: SecretStr | None = None
    audit_key_file: str | None = None
    audit_anchor_redis: SecretStr | None = None
    # metrics (issue 14): per-room label cap
    metrics_room_labels: int = 20
    # consult reports (clinical/consult_report.py): the hospital's FHIR server for signed reports
    fhir_report_url: str | None = None
    fhir_report_token: SecretStr | None = None
    # operations (packaging): graceful shutdown (signaling/shutdown.py)
    shutdown_grace: float = 3.0
    shutdown_timeout: float = 8.0
    # --- media port (issue 12): every peer's ICE, DTLS and SRTP on one UDP port ---
    media_port: int = 40000
    ice_tcp: bool = True
    media_port_range: tuple[int, int] | None = None  # with media_port 0: (low, high) of every connection's port
    # turn (issue 11): short-lived TURN credentials instead of a static list (signaling/ice_servers.py)
    turn_urls: list[str] = []
    turn_secret: SecretStr | None = None
    turn_ttl: int = 3600
    # multi-node (issue 15): on when room_store is a redis:// URL; see docs/multinode.md
    node_id: str | None = None
    public_url: str | None = None
    node_ttl: float = 6.0
    token_key_rotation: int = 24 * 3600
    # resume (issue 11): a peer whose connection went keeps its seat this long
    resume_grace: float = 15.0
    # S3 archive (issue 15): finished recordings copied to a bucket (recorder/s3_archive.py)
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_local_days: float = 0.0

    @field_validator("*", mode="before")
    @classmethod
    def _parsed(cls, value: object, info: ValidationInfo) -> object:
        return value if value is None else _coerce(info.field_name, value)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) takes only what it is given: load() layers the file, the given
        # environment and the flags, so that tests and tools build settings without os.environ.
        return (init_settings,)


def reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


HELP = {
    "host": "address to listen on (default 127.0.0.1)",
    "port": "TCP port for HTTP(S), WebSocket, WHIP and WHEP (default 8080)",
    "tls_cert": "PEM certificate: serve HTTPS/WSS (browsers need it off localhost)",
    "tls_key": "PEM private key for --tls-cert",
    "ice_hosts": "comma-separated addresses offered as ICE host candidates; pin 127.0.0.1 "
                 "for loopback (aioice skips loopback otherwise); default: all interfaces",
    "public_ip": "public address announced in candidates when behind a 1:1 NAT",
    "ice_servers": 'JSON list of STUN/TURN servers handed to clients, e.g. '
                   '[{"urls": "turn:turn.example.org", "username": "u", "credential": "c"}]',
    "data_dir": "directory for recordings, clinical objects and logs (default ./data)",
    "room_store": '"sqlite" (default: <data_dir>/rooms.sqlite3, kept across restarts), '
                  '"sqlite:///path", "memory" (lost on exit) or a redis:// URL (rooms shared '
                  'across nodes)',
    "admin_key": "bearer key required to create/delete rooms (default: none, open on localhost)",
    "secret": "JWT signing secret, >= 32 bytes (default: generated once and kept in "
              "<data_dir>/token-secret.key, mode 0600, so tokens survive a restart)",
    "token_ttl": "token lifetime in seconds (default 600)",
    "log_level": "debug, info, warning or error (default info)",
    "pacs_url": "DICOMweb base URL of a PACS that peers may pull studies from, e.g. "
                "http://127.0.0.1:8042/dicom-web (default: none, pulling is off)",
    "pacs_username": "user name for HTTP basic auth to the PACS (default: no auth)",
    "pacs_password": "password for --pacs-username (prefer the env or the config file "
                     "to a flag, which other local users can see)",
    "pacs_timeout": "seconds to wait for the PACS to connect or send more data (default 30)",
    "live_size": "picture size of the live program, WIDTHxHEIGHT (default 1280x720)",
    "live_fps": "frame rate of the live program (default 30)",
    "live_video_kbps": "video bitrate of the live program in kbit/s (default 2500)",
    "live_x264_preset": "libx264 preset of the live program: ultrafast .. medium (default veryfast)",
    "live_link_ttl": "seconds a signed HLS link stays valid (default 14400, a long lesson)",
    "live_requests_per_second": "HLS requests each viewer may make per second, with a burst "
                                "of twice that (default 20); beyond it they get 429",
    "max_session_age": "seconds after signing in beyond which refresh-token stops extending a "
                       "session (default 43200, 12 h)",
    "oidc_jwks_url": "JWKS URL of a hospital identity provider whose id_tokens may be exchanged "
                     "for room tokens (default: none, off)",
    "oidc_issuer": "the identity provider's issuer ('iss'), required with --oidc-jwks-url",
    "oidc_audience": "the audience ('aud') its id_tokens must name, required with --oidc-jwks-url",
    "oidc_role_claim": "id_token claim holding the user's role(s) (default 'role')",
    "oidc_role_map": 'JSON object mapping role-claim values to room roles, e.g. '
                     '{"consultant": "host", "nurse": "participant"} (default: role names map '
                     'to themselves)',
    # login lockout (trust-lockout)
    "login_max_failures": "wrong room passwords per address and room per minute before it must "
                          "wait (default 5; four times as many across rooms per 10 minutes)",
    "login_room_max_failures": "wrong passwords per room across all addresses per 10 minutes "
                               "before the room's password login locks for addresses that have "
                               "not logged into it lately (default 20)",
    "login_in_flight": "password checks one address may have running at once; the excess is "
                       "refused at once with 429 (default 2; per room: twice this)",
    "password_workers": "threads that check passwords (scrypt, ~0.1 s of a core and 32 MiB "
                        "each); one is kept for people who logged into the room lately, the "
                        "rest serve everyone else (default 2: about 10 new logins a second; "
                        "raise it on a machine with more cores)",
    "master_key": "base64 of 32 random bytes: the master key that wraps the data keys of "
                  "everything encrypted at rest (prefer the env or the config file to a flag; "
                  "default: read or create --master-key-file)",
    "master_key_file": "file holding the master key, created 0600 on first start if missing "
                       "(default <data_dir>/keys/master.key; keep a copy apart from the data)",
    "previous_master_keys": "comma-separated base64 master keys that still unwrap data keys "
                            "while they are re-wrapped under the new one (key rotation)",
    "recording_retention_days": "delete recordings older than this many days, checked hourly "
                                "(default 0: keep them until deleted)",
    # replay
    "recording_link_ttl": "seconds a replay's signed media links stay valid (default 1800; "
                          "the replay page renews expired ones with its token)",
    "max_json_body": "largest JSON request body in bytes; larger answers 413 (default 65536)",
    "max_sdp_body": "largest WHIP/WHEP SDP body in bytes; larger answers 413 (default 131072)",
    "body_timeout": "seconds a client may take to send a request body; slower answers 408 "
                    "(default 30)",
    "header_timeout": "seconds a connection may stay without a complete request head, and "
                      "idle between requests, before it is closed (default 15)",
    "max_connections_per_address": "concurrent TCP connections one client address may hold; "
                                   "more are answered 429 and closed (default 200)",
    "ws_join_timeout": "seconds a WebSocket may stay without a successful 'join' (default 10)",
    "whip_origins": "comma-separated origins (scheme://host[:port]) whose pages may use WHIP/WHEP "
                    "through CORS, besides the server's own origin (default: only its own)",
    "ws_origins": "comma-separated origins (scheme://host[:port]) whose pages may open the "
                  "WebSocket, besides the server's own origin (default: only its own)",
    "metrics_key": "bearer key that /metrics requires on the main listener (default: none; "
                   "then /metrics is only served on --metrics-listen)",
    "metrics_listen": "host:port of a separate listener that serves /metrics without a key, "
                      "e.g. 127.0.0.1:9100 (default: none)",
    "trusted_proxies": "comma-separated addresses or networks of reverse proxies whose X-Forwarded-For/"
                       "-Proto/-Host are believed (default: none, headers ignored)",
    "whip_connect_timeout": "seconds a WHIP/WHEP session may take to connect before it is "
                            "removed (default 20)",
    "whip_sessions_per_token": "concurrent WHIP/WHEP sessions one identity may hold in a room; "
                               "more answer 429 (default 4)",
    # audit trail (trust-audit)
    "audit_key": "HMAC key of the audit chain, >= 32 bytes (default: generated once into "
                 "--audit-key-file); keep it apart from the data: without it the trail cannot be verified",
    "audit_key_file": "file holding the audit key, created 0600 if missing "
                      "(default <data_dir>/keys/audit.key)",
    "audit_anchor_redis": "redis:// URL where each day's audit chain head is also anchored "
                          "(default: the anchor file only)",
    # consult reports
    "fhir_report_url": "FHIR R4 base URL (e.g. https://fhir.example.org/fhir) that signed consult "
                       "reports are sent to as DiagnosticReports (default: kept here only)",
    "fhir_report_token": "bearer token for --fhir-report-url (env TELEMED_FHIR_REPORT_TOKEN)",
    # metrics (issue 14)
    "metrics_room_labels": "rooms named in the per-room gauges of /metrics, the busiest first; the "
                           "rest are summed under room=\"(other)\" (default 20; 0 names none)",
    # operations (packaging)
    "shutdown_grace": "seconds after SIGTERM that connected clients, told to reconnect elsewhere, get "
                      "to leave before their connections are closed (default 3)",
    "shutdown_timeout": "seconds after SIGTERM within which the process exits, whatever is still "
                        "open (default 8; keep it below systemd's TimeoutStopSec)",
    # media port (issue 12)
    "media_port": "UDP port that carries every peer's ICE, DTLS and SRTP, on each --ice-hosts "
                  "address (default 40000); 0: a random port per connection instead (the old mode)",
    "media_port_range": "LOW-HIGH, e.g. 20000-20999: with --media-port 0, every connection's UDP "
                        "port is a free one of this range, for firewalls that open a range rather "
                        "than one port (1024..65535; each connection takes one per --ice-hosts "
                        "address; when all are taken, new connections are refused). Refused with "
                        "a --media-port other than 0 (default: any port)",
    "ice_tcp": "also accept ICE over TCP (RFC 6544, passive) on the same port number, for "
               "networks that block UDP (default true; needs --media-port)",
    # turn (issue 11)
    "turn_urls": "comma-separated TURN URLs handed out with short-lived credentials, e.g. "
                 "turn:turn.example.org:3478,turn:turn.example.org:3478?transport=tcp,"
                 "turns:turn.example.org:443?transport=tcp (needs --turn-secret; docs/turn.md)",
    "turn_secret": "secret shared with the TURN server (coturn: use-auth-secret and "
                   "static-auth-secret), >= 16 bytes; prefer the env or the config file to a flag",
    "turn_ttl": "seconds a handed-out TURN credential may open new allocations; clients get "
                "fresh ones on every join, resume and WHIP/WHEP request (default 3600; "
                "docs/turn.md)",
    # multi-node (issue 15)
    "node_id": "this node's name in the cluster, letters, digits, '.', '_' and '-' (default "
               "<hostname>-<port>); only used when --room-store is a redis:// URL",
    "public_url": "base URL clients are sent to for rooms this node hosts, e.g. "
                  "https://node2.example.org (default http(s)://<host>:<port>)",
    "node_ttl": "seconds after its last heartbeat that a node counts as dead and its room "
                "leases lapse; heartbeats go every third of it (default 6)",
    "token_key_rotation": "seconds between rotations of the shared token signing key, at "
                          "least --token-ttl (default 86400)",
    # resume (issue 11)
    "resume_grace": "seconds a participant whose connection dropped keeps its seat, shown to the "
                    "others as reconnecting, before it counts as a leave; 0 leaves at once (default 15)",
    # S3 archive (issue 15)
    "s3_endpoint": "http(s)://host[:port] of an S3-compatible store: finished recordings are "
                   "copied there, still encrypted, and read back from it once the local files "
                   "are gone (default: none; needs the 's3' extra; docs/multinode.md)",
    "s3_bucket": "the bucket for --s3-endpoint (it must exist)",
    "s3_access_key": "access key for --s3-endpoint (prefer the env or the config file)",
    "s3_secret_key": "secret key for --s3-endpoint (prefer the env or the config file)",
    "s3_region": "region the S3 requests are signed for (default us-east-1)",
    "s3_prefix": "prefix of every object key in the bucket, e.g. 'telemed/' (default none)",
    "s3_local_days": "delete the local track files of archived recordings this many days after "
                     "they ended, checked hourly; they replay from the bucket (default 0: keep them)",
}

_EDGE_INTS = ("max_json_body", "max_sdp_body", "max_connections_per_address",
              "whip_sessions_per_token")
_EDGE_SECONDS = ("body_timeout", "header_timeout", "ws_join_timeout", "whip_connect_timeout")
_LOGIN_COUNTS = ("login_max_failures", "login_room_max_failures", "login_in_flight", "password_workers")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


def _coerce(name: str, value: object) -> object:
    if name in ("port", "token_ttl", "max_session_age"):
        return int(value)
    if name == "oidc_role_map":
        return parse_role_map(value)
    if name in _LOGIN_COUNTS:
        count = int(value)
        if not 1 <= count <= 10_000:
            raise ValueError(f"{name} must be from 1 to 10000")
        return count
    if name == "ice_hosts":
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    if name == "ice_servers":
        parsed = json.loads(value) if isinstance(value, str) else value
        if not isinstance(parsed, list) or not all(isinstance(s, dict) and "urls" in s for s in parsed):
            raise ValueError("ice_servers must be a JSON list of objects with 'urls'")
        return parsed
    if name == "pacs_timeout":
        timeout = float(value)
        if not 0 < timeout <= 3600:
            raise ValueError("pacs_timeout must be in (0, 3600] seconds")
        return timeout
    if name in ("pacs_url", "fhir_report_url"):
        return _service_url(name, value)
    if name in ("live_fps", "live_video_kbps", "live_link_ttl"):
        return int(value)
    if name == "live_requests_per_second":
        return float(value)
    if name == "live_x264_preset":
        if value not in X264_PRESETS:
            raise ValueError(f"live_x264_preset must be one of {', '.join(X264_PRESETS)}")
        return value
    if name == "live_size":
        width, _, height = str(value).partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise ValueError("live_size must be WIDTHxHEIGHT, e.g. 1280x720")
        return f"{int(width)}x{int(height)}"
    if name in ("recording_retention_days", "s3_local_days"):
        days = float(value)
        if not 0 <= days <= 36500:
            raise ValueError(f"{name} must be in [0, 36500]")
        return days
    if name == "previous_master_keys":
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    if name == "recording_link_ttl":
        ttl = int(value)
        if not 60 <= ttl <= 86400:
            raise ValueError("recording_link_ttl must be 60..86400 seconds")
        return ttl
    if name == "ice_tcp":
        if isinstance(value, bool):
            return value
        if str(value).lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError("ice_tcp must be true or false")
        return str(value).lower() in ("1", "true", "yes", "on")
    if name == "media_port":
        number = int(value)
        if not 0 <= number <= 65535:
            raise ValueError("media_port must be 0..65535 (0: a port per connection)")
        return number
    if name == "media_port_range":
        return _port_range(value)
    if name in _EDGE_INTS:
        number = int(value)
        if number < 1:
            raise ValueError(f"{name} must be at least 1")
        return number
    if name in ("shutdown_grace", "shutdown_timeout"):
        seconds = float(value)
        if not 0 <= seconds <= 600:
            raise ValueError(f"{name} must be in [0, 600] seconds")
        return seconds
    if name in _EDGE_SECONDS:
        seconds = float(value)
        if not 0 < seconds <= 3600:
            raise ValueError(f"{name} must be in (0, 3600] seconds")
        return seconds
    if name == "s3_endpoint":  # S3 archive (issue 15)
        return _service_url(name, value)
    if name == "s3_prefix":
        prefix = str(value).lstrip("/")
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"
    if name == "resume_grace":  # resume (issue 11)
        grace = float(value)
        if not 0 <= grace <= 600:
            raise ValueError("resume_grace must be in [0, 600] seconds")
        return grace
    if name in ("ws_origins", "whip_origins"):
        origins = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        bad = [origin for origin in origins if normalize_origin(origin) is None]
        if bad:
            raise ValueError(f"{name} takes scheme://host[:port] origins, not {', '.join(bad)}")
        return origins
    if name == "trusted_proxies":
        proxies = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        for proxy in proxies:
            ipaddress.ip_network(proxy)  # an address or a network; ValueError names the bad one
        return proxies
    if name == "metrics_room_labels":
        count = int(value)
        if not 0 <= count <= 1000:
            raise ValueError("metrics_room_labels must be from 0 to 1000")
        return count
    if name == "turn_urls":
        return _turn_urls(value)
    if name == "turn_ttl":
        ttl = int(value)
        if not 60 <= ttl <= 7 * 86400:
            raise ValueError("turn_ttl must be 60..604800 seconds")
        return ttl
    if name == "node_id":
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", str(value)):
            raise ValueError("node_id takes 1-64 letters, digits, '.', '_' or '-'")
        return str(value)
    if name == "public_url":
        url = urlsplit(str(value))
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/") \
                or url.query or url.fragment or url.username or url.password:
            raise ValueError("public_url must be http(s)://host[:port], without a path")
        return str(value).rstrip("/")
    if name == "node_ttl":
        ttl = float(value)
        if not 1 <= ttl <= 300:
            raise ValueError("node_ttl must be 1..300 seconds")
        return ttl
    if name == "token_key_rotation":
        return int(value)
    if name == "metrics_listen":
        host, _, port = str(value).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("metrics_listen must be host:port")
        return str(value)
    return value


_PORT_RANGE = re.compile(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*")


def _port_range(value: object) -> tuple[int, int] | None:
    """'LOW-HIGH' (a flag, the env, TOML) or (low, high) (code); '' is no range."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(type(v) is int for v in value):
        low, high = value
    elif isinstance(value, str) and not value.strip():
        return None
    elif isinstance(value, str) and (match := _PORT_RANGE.fullmatch(value)):
        low, high = int(match[1]), int(match[2])
    else:
        raise ValueError("media_port_range must be LOW-HIGH, e.g. 20000-20999")
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"media_port_range must be LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, not {low}-{high}")
    return low, high


# RFC 7065: turn:host[:port][?transport=udp|tcp], turns:host[:port][?transport=tcp]
_TURN_URL = re.compile(r"(turn:[^\s?:/]+(:\d{1,5})?(\?transport=(udp|tcp))?"
                       r"|turns:[^\s?:/]+(:\d{1,5})?(\?transport=tcp)?)")


def _turn_urls(value: object) -> list[str]:
    urls = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    bad = [url for url in urls if not (isinstance(url, str) and _TURN_URL.fullmatch(url))]
    if bad:
        raise ValueError(f"turn_urls takes turn:host[:port][?transport=udp|tcp] or "
                         f"turns:host[:port][?transport=tcp] URLs, not {', '.join(map(str, bad))}")
    return urls


def _service_url(name: str, value: object) -> str:
    url = urlsplit(str(value))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{name} must be an http(s) URL")
    # Credentials in the URL would end up in logs; they belong in their own secret settings.
    if url.username or url.password or url.query or url.fragment:
        raise ValueError(f"{name} takes no user info, query or fragment")
    return str(value).rstrip("/")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file with any of the settings below "
                        "(env TELEMED_CONFIG)")
    for name in Settings.model_fields:
        env = "TELEMED_" + name.upper()
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                            help=f"{HELP[name]} [env {env}]")


def load(args: argparse.Namespace | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    config_path = getattr(args, "config", None) or environ.get("TELEMED_CONFIG")
    if config_path:
        with Path(config_path).open("rb") as fh:
            values.update(tomllib.load(fh))
    for name in Settings.model_fields:
        env = environ.get("TELEMED_" + name.upper())
        if env is not None:
            values[name] = env
        arg = getattr(args, name, None) if args is not None else None
        if arg is not None:
            values[name] = arg
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    try:
        settings = Settings(**values)
    except ValidationError as exc:  # one line per bad setting, never its value
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                                   for e in exc.errors())) from None
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ValueError("tls_cert and tls_key go together")
    if (settings.pacs_username or settings.pacs_password) and not settings.pacs_url:
        raise ValueError("pacs_username and pacs_password need pacs_url")
    if settings.pacs_password and not settings.pacs_username:
        raise ValueError("pacs_password needs pacs_username")
    if settings.max_session_age <= 0:
        raise ValueError("max_session_age must be a positive number of seconds")
    if settings.oidc_jwks_url and not (settings.oidc_issuer and settings.oidc_audience):
        raise ValueError("oidc_jwks_url needs oidc_issuer and oidc_audience")
    if settings.audit_key is not None and len(reveal(settings.audit_key).encode()) < 32:
        raise ValueError("audit_key must be at least 32 bytes")
    if settings.token_key_rotation < settings.token_ttl:
        raise ValueError("token_key_rotation must be at least token_ttl: a token must outlive its "
                         "key's retirement")
    if settings.shutdown_grace >= settings.shutdown_timeout:
        raise ValueError("shutdown_grace must be shorter than shutdown_timeout")
    if bool(settings.turn_urls) != bool(settings.turn_secret):
        raise ValueError("turn_urls and turn_secret go together")
    if settings.turn_secret is not None and len(reveal(settings.turn_secret).encode()) < 16:
        raise ValueError("turn_secret must be at least 16 bytes")
    if settings.media_port_range is not None and settings.media_port:
        # Refused, not ignored: a firewall opened for the range would block the one port in use.
        low, high = settings.media_port_range
        raise ValueError(f"media_port_range {low}-{high} applies only with media_port 0 (a port per "
                         f"connection), but media_port is {settings.media_port} (all media on that one "
                         "port): set --media-port 0 to use the range, or drop the range")
    s3 = (settings.s3_bucket, settings.s3_access_key, settings.s3_secret_key)
    if settings.s3_endpoint and not all(s3):
        raise ValueError("s3_endpoint needs s3_bucket, s3_access_key and s3_secret_key")
    if any(s3) and not settings.s3_endpoint:
        raise ValueError("s3_bucket, s3_access_key and s3_secret_key need s3_endpoint")
    return settings
