"""DICOM intake throughput on the conformance corpus' largest files: MB/s through what a
room does with an upload (validate, de-identify, validate the copy, preview frame 0,
store encrypted), stage by stage, in this process, one object at a time as the room's
intake lock does.

    python -m benchmarks.dicom_intake [--files 5] [--rounds 3] [--corpus DIR] [--out FILE]

The corpus is read from ../shared/conformance/clinical beside the checkout (or --corpus).
Each file runs --rounds times; the table shows the median per stage.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--corpus", type=Path, default=None, help="the conformance corpus folder")
    p.add_argument("--out", type=Path, default=RESULTS / "dicom_intake.json")
    a = p.parse_args(argv)
    corpus = a.corpus or default_corpus()
    rows = run(largest(corpus, a.files), a.rounds)
    print(table(rows))
    total_bytes = sum(r["bytes"] for r in rows)
    total_s = sum(r["total_s"] for r in rows)
    result = {"benchmark": "dicom_intake", "host": platform.node(), "python": platform.python_version(),
              "cpus": os.cpu_count(), "rounds": a.rounds, "files": rows,
              "total_mb_per_s": total_bytes / 1e6 / total_s}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
