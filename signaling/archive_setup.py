"""The S3 archive of finished recordings, from settings (docs/multinode.md): for the
server and for `telemed recordings export`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Settings, reveal

if TYPE_CHECKING:  # the S3 client is the optional 's3' extra
    from recorder.s3_archive import S3Archive


def s3_archive(settings: Settings) -> S3Archive | None:
    if not settings.s3_endpoint:
        return None
    try:
        from recorder.s3_archive import S3Archive, S3Location
    except ImportError as exc:
        raise ValueError(f"s3_endpoint needs the 's3' extra (pip install 'telemed[s3]'): {exc}") from None
    return S3Archive(S3Location(settings.s3_endpoint, settings.s3_bucket or "", reveal(settings.s3_access_key) or "",
                                reveal(settings.s3_secret_key) or "", settings.s3_region, settings.s3_prefix))
