"""DICOM intake throughput on the conformance corpus' largest files: MB/s through what a
room does with an upload (validate, de-identify, validate the copy, preview frame 0,
store encrypted), stage by stage, in this process, one object at a time as the room's
intake lock does.

Then a 60 MB multi-frame study (pydicom's CT_small grown to 120 frames of 512x512):
how long after its notice the server has the first frame's PNG ready, with the dataset
kept from intake (what a room does) and cold (what it did before: decrypt and parse the
stored file), and how long until every frame has streamed in.

    python -m benchmarks.dicom_intake [--files 5] [--rounds 3] [--study-mb 60] [--corpus DIR] [--out FILE]

The corpus is read from ../shared/conformance/clinical beside the checkout (or --corpus).
Each file runs --rounds times; the table shows the median per stage. Server side only:
the browser's own PNG decode and paint (a few ms) are not included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from clinical.deidentify import Deidentifier
from clinical.dicom_preview import render_png
from clinical.dicom_validate import read_dicom
from clinical.object_store import ObjectStore
from conference.dicom_previews import Previews
from vault import KeyRing

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("validate", "deidentify", "revalidate", "preview", "store")


def default_corpus() -> Path:
    for base in (REPO.parent, *REPO.parents[1:]):
        candidate = base / "shared" / "conformance" / "clinical"
        if (candidate / "manifest.json").is_file():
            return candidate
    raise SystemExit("no shared/conformance/clinical beside the checkout; pass --corpus")


def largest(corpus: Path, count: int) -> list[Path]:
    """The largest files the manifest expects to be accepted (refusals cost nothing)."""
    manifest = json.loads((corpus / "manifest.json").read_text())["dicom"]
    accepted = [corpus / "dicom" / name for name, e in manifest.items() if e["expect"] != "refuse"]
    return sorted(accepted, key=lambda p: p.stat().st_size, reverse=True)[:count]


def intake(data: bytes, deidentifier: Deidentifier, store: ObjectStore) -> dict[str, float]:
    times: dict[str, float] = {}

    def timed(stage: str, work):
        start = time.perf_counter()
        result = work()
        times[stage] = time.perf_counter() - start
        return result

    obj = timed("validate", lambda: read_dicom(data))
    shared = timed("deidentify", lambda: deidentifier(data))
    obj = timed("revalidate", lambda: read_dicom(shared))
    if obj.kind == "image":
        timed("preview", lambda: render_png(obj, 0))
    else:
        times["preview"] = 0.0
    timed("store", lambda: store.put(shared))
    return times


def run(files: list[Path], rounds: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="dicom-intake-") as tmp:
        store = ObjectStore(Path(tmp) / "objects", KeyRing(os.urandom(32)))
        for path in files:
            data = path.read_bytes()
            samples = [intake(data, Deidentifier(), store) for _ in range(rounds)]
            stages = {s: statistics.median(t[s] for t in samples) for s in STAGES}
            total = sum(stages.values())
            obj = read_dicom(data)
            rows.append({
                "file": path.name, "bytes": len(data), "frames": obj.frames,
                "transfer_syntax": obj.transfer_syntax_uid, "seconds": stages,
                "total_s": total, "mb_per_s": len(data) / 1e6 / total,
            })
    return rows


def large_study(megabytes: float) -> bytes:
    from io import BytesIO

    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    frames = max(2, round(megabytes * 1e6 / (512 * 512 * 2)))
    pixels = np.random.default_rng(1).integers(0, 2000, size=(frames, 512, 512)).astype(np.int16)
    ds.set_pixel_data(pixels, "MONOCHROME2", 16)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


async def first_frame(megabytes: float, rounds: int) -> dict:
    data = large_study(megabytes)
    with tempfile.TemporaryDirectory(prefix="dicom-study-") as tmp:
        store = ObjectStore(Path(tmp) / "objects", KeyRing(os.urandom(32)))
        start = time.perf_counter()
        obj = read_dicom(data)
        key = store.put(data)
        intake_s = time.perf_counter() - start  # upload complete -> notice
        primed, cold = [], []
        for _ in range(rounds):
            previews = Previews(store)
            previews.prime(key, obj.dataset)
            start = time.perf_counter()
            await previews.png(key, 0, None)
            primed.append(time.perf_counter() - start)
            start = time.perf_counter()
            await Previews(store).png(key, 0, None)
            cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        for frame in range(1, obj.frames):  # the viewer's stream-in, one request at a time
            await previews.png(key, frame, None)
        rest_s = time.perf_counter() - start
    return {"bytes": len(data), "frames": obj.frames, "intake_s": intake_s,
            "first_frame_primed_s": statistics.median(primed), "first_frame_cold_s": statistics.median(cold),
            "all_frames_s": rest_s + statistics.median(primed)}


def table(rows: list[dict]) -> str:
    head = f"{'file':38} {'MB':>6} {'frames':>6} " + " ".join(f"{s:>10}" for s in STAGES) + f" {'MB/s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = " ".join(f"{r['seconds'][s] * 1000:>8.1f}ms" for s in STAGES)
        lines.append(f"{r['file'][:38]:38} {r['bytes'] / 1e6:>6.2f} {r['frames']:>6} {ms} {r['mb_per_s']:>7.2f}")
    total_bytes = sum(r["bytes"] for r in rows)
    total_s = sum(r["total_s"] for r in rows)
    lines.append(f"all {len(rows)} files: {total_bytes / 1e6:.2f} MB in {total_s:.3f} s = {total_bytes / 1e6 / total_s:.2f} MB/s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dicom_intake", description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=5, help="how many of the largest accepted files (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="runs per file; the median is kept (default 3)")
    p.add_argument("--study-mb", type=float, default=60.0, help="size of the multi-frame study (default 60)")
    p.add_argument("--corpus", type=Path, default=None, help="the conformance corpus folder")
    p.add_argument("--out", type=Path, default=RESULTS / "dicom_intake.json")
    a = p.parse_args(argv)
    corpus = a.corpus or default_corpus()
    rows = run(largest(corpus, a.files), a.rounds)
    print(table(rows))
    total_bytes = sum(r["bytes"] for r in rows)
    total_s = sum(r["total_s"] for r in rows)
    study = asyncio.run(first_frame(a.study_mb, a.rounds))
    print(f"\n{study['bytes'] / 1e6:.1f} MB study, {study['frames']} frames: validated and stored in "
          f"{study['intake_s']:.2f} s; first frame {study['first_frame_primed_s'] * 1000:.0f} ms after the "
          f"notice (kept from intake), {study['first_frame_cold_s'] * 1000:.0f} ms cold; all frames in "
          f"{study['all_frames_s']:.2f} s")
    result = {"benchmark": "dicom_intake", "host": platform.node(), "python": platform.python_version(),
              "cpus": os.cpu_count(), "rounds": a.rounds, "files": rows,
              "total_mb_per_s": total_bytes / 1e6 / total_s, "study": study}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
