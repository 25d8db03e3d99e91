"""A recording out of the vault: decrypted, playable track files plus its manifest, for
archiving or a PACS. Files cut by a crash are written up to their last complete chunk.
A file that is not here is read from the S3 archive, if one is given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from vault import ByteSource, EncryptedReader, KeyRing

from . import manifest_file
from .errors import RecordingError

if TYPE_CHECKING:
    from .s3_archive import S3Archive


def export_recording(recordings: Path, ring: KeyRing, rec_id: str, target: Path,
                     archive: S3Archive | None = None) -> list[Path]:
    """Write ``<track id>.<webm|mkv>`` and ``manifest.json`` into ``target``; returns them."""
    directory = recordings / rec_id

    def source(name: str) -> Path | ByteSource:
        path = directory / name
        return archive.open(rec_id, name) if archive is not None and not path.is_file() else path

    if not rec_id.isalnum():
        raise RecordingError(404, "not-found", f"no recording {rec_id!r} under {recordings}")
    try:
        manifest, _ = manifest_file.read(source(manifest_file.NAME), ring)
    except FileNotFoundError:
        raise RecordingError(404, "not-found", f"no recording {rec_id!r} under {recordings}"
                             + (" nor in the S3 archive" if archive is not None else "")) from None
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for track in manifest["tracks"]:
        out = target / track["file"].removesuffix(".enc")
        with EncryptedReader(source(track["file"]), ring) as reader, out.open("wb") as f:
            reader.refresh()
            shutil.copyfileobj(reader, f, 1024 * 1024)
        written.append(out)
    path = target / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    written.append(path)
    return written
