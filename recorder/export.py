"""A recording out of the vault: decrypted, playable track files plus its manifest, for
archiving or a PACS. Files cut by a crash are written up to their last complete chunk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vault import EncryptedReader, KeyRing

from . import manifest_file
from .errors import RecordingError


def export_recording(recordings: Path, ring: KeyRing, rec_id: str, target: Path) -> list[Path]:
    """Write ``<track id>.<webm|mkv>`` and ``manifest.json`` into ``target``; returns them."""
    directory = recordings / rec_id
    if not rec_id.isalnum() or not (directory / manifest_file.NAME).is_file():
        raise RecordingError(404, "not-found", f"no recording {rec_id!r} under {recordings}")
    manifest, _ = manifest_file.load(directory, ring)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for track in manifest["tracks"]:
        out = target / track["file"].removesuffix(".enc")
        with EncryptedReader(directory / track["file"], ring) as reader, out.open("wb") as f:
            reader.refresh()
            shutil.copyfileobj(reader, f, 1024 * 1024)
        written.append(out)
    path = target / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    written.append(path)
    return written
