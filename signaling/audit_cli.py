"""``telemed audit verify [--data-dir DIR] [other settings]``: exit 0 when the audit trail
is whole and unaltered, 1 otherwise, with one plain line per finding."""

from __future__ import annotations

import argparse
import sys

from clinical.audit_check import check_trail

from . import config
from .audit_setup import key_file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telemed audit", description="Check the audit trail: every record's HMAC and link, "
        "and that no anchored day head is missing (a cut-off tail). Takes the same settings "
        "as serve (data dir, audit key or key file, Redis anchor).")
    parser.add_argument("action", choices=["verify"])
    config.add_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args)
        key = read_key(settings)
    except (ValueError, OSError) as exc:
        print(f"telemed audit: {exc}", file=sys.stderr)
        return 1
    report = check_trail(settings.data_dir, key, settings.audit_anchor_redis)
    for line in report.lines:
        print(line)
    return 0 if report.ok else 1


def read_key(settings: config.Settings) -> bytes:
    """The configured key, or the key file's; never creates one (that is serve's job)."""
    if settings.audit_key:
        return settings.audit_key.encode()
    path = key_file(settings)
    try:
        return path.read_text(encoding="utf-8").strip().encode()
    except FileNotFoundError:
        raise ValueError(f"no audit key: {path} does not exist and audit_key is not set") from None
