"""`telemed recordings export ID DIR`: a recording, decrypted, for archiving (from the S3
archive when its files are not in the data directory)."""

from __future__ import annotations

from pathlib import Path

from recorder import RecordingError
from recorder.export import export_recording
from vault import KeyRing, VaultError

from .archive_setup import s3_archive
from .config import Settings, reveal

USAGE = "usage: telemed recordings export ID DIR"


def run(settings: Settings, words: list[str]) -> str:
    """Carry out one command; returns what to print. Raises SystemExit on bad use."""
    if len(words) != 3 or words[0] != "export":
        raise SystemExit(USAGE)
    rec_id, target = words[1], Path(words[2])
    data = Path(settings.data_dir)
    key_file = Path(settings.master_key_file) if settings.master_key_file else data / "keys" / "master.key"
    if not settings.master_key and not key_file.is_file():
        raise SystemExit(f"telemed: no master key: set master_key or master_key_file ({key_file} is missing)")
    try:
        ring = KeyRing.load(reveal(settings.master_key), key_file, [reveal(k) for k in settings.previous_master_keys])
        written = export_recording(data / "recordings", ring, rec_id, target, s3_archive(settings))
    except RecordingError as exc:
        raise SystemExit(f"telemed: {exc.message}") from None
    except VaultError as exc:
        raise SystemExit(f"telemed: cannot decrypt recording {rec_id}: {exc}") from None
    except (OSError, ValueError) as exc:  # ArchiveError is an OSError
        raise SystemExit(f"telemed: {exc}") from None
    return "\n".join(str(p) for p in written)
