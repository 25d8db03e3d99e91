"""Where our server's time goes: collapsed stacks, summed per function.

Two sources: py-spy (`--nonblocking`, never pauses the server; counts samples
where a thread is not idle) and Linux perf (cpu-clock: only on-CPU time, kernel
included; Python frames named through PYTHONPERFSUPPORT=1 trampolines). perf is
folded into py-spy's raw format first, so one summary serves both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _short(path: str, repo: Path) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(repo) + "/"):
        return path[len(str(repo)) + 1 :]
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


def _name(frame: str, repo: Path) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{_short(m.group('file'), repo)}:{m.group('func')}"


def fold_perf(data: Path, out: Path) -> None:
    """`perf script` samples -> "root;...;leaf count" lines with py-spy-style names."""
    script = subprocess.run(["perf", "script", "-i", str(data), "--no-inline", "-F", "ip,sym,dso"],
                            capture_output=True, text=True, timeout=600)
    stacks: Counter[str] = Counter()
    frames: list[str] = []

    def flush() -> None:
        if frames:
            stacks[";".join(reversed(frames))] += 1
            frames.clear()

    for line in script.stdout.splitlines():
        line = line.strip()
        if not line:
            flush()
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        sym, _, dso = parts[1].rpartition(" (")
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym.strip())
        dso = dso.rstrip(")")
        if sym.startswith("py::"):
            func, _, path = sym[4:].rpartition(":")
            frames.append(f"{func} ({path})")
        elif sym in ("", "[unknown]"):
            frames.append(f"[unknown] ({os.path.basename(dso)})")
        elif "kernel" in dso:
            frames.append(f"{sym} (kernel)")
        else:
            frames.append(f"{sym} ({os.path.basename(dso)})")
    flush()
    out.write_text("".join(f"{stack} {n}\n" for stack, n in stacks.items()))


def summarize(raw: Path, repo: Path, top: int = 25) -> dict:
    self_counts: Counter[str] = Counter()
    python_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    area_counts: Counter[str] = Counter()
    split_counts: dict[str, Counter[str]] = {}
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_name(f, repo) for f in stack.split(";") if f.strip()]
        # py-spy puts the thread name first; drop anything that is not a code frame.
        frames = [f for f in frames if ":" in f]
        if not frames:
            continue
        samples += n
        self_counts[frames[-1]] += n
        # Innermost Python function: its bytecode plus the C and kernel work it calls.
        py = next((f for f in reversed(frames) if _is_python(f)), frames[-1])
        python_counts[py] += n
        split_counts.setdefault(py, Counter())[_leaf_kind(frames)] += n
        for f in set(frames):
            total_counts[f] += n
        area_counts[_area(frames, py)] += n

    def pct(counter: Counter[str]) -> list[dict]:
        return [{"function": k, "pct": round(100 * v / samples, 1)} for k, v in counter.most_common(top)]

    result = {"samples": samples, "top_python": pct(python_counts), "top_self": pct(self_counts),
              "top_total": pct(total_counts), "by_area": pct(area_counts)}
    lines = [f"samples: {samples}", "",
             "innermost Python function % (with the C/kernel work it calls directly):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["top_python"]]
    result["split"] = {
        e["function"]: {k: round(100 * v / samples, 1) for k, v in split_counts[e["function"]].most_common(4)}
        for e in result["top_python"][:6]
    }
    lines += ["", "where the top ones spend it (% of all samples):"]
    lines += [f"  {f}: " + ", ".join(f"{k} {v}" for k, v in parts.items())
              for f, parts in result["split"].items()]
    lines += ["", "self % (leaf frame, C and kernel included where the profiler sees them):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["top_self"]]
    lines += ["", "total % (function and what it calls):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["top_total"]]
    lines += ["", "by area (kernel / native library / Python code by package, interpreter included):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["by_area"]]
    result["text"] = "\n".join(lines) + "\n"
    return result


def _leaf_kind(frames: list[str]) -> str:
    leaf = frames[-1].split(":", 1)[0]
    if leaf == "kernel":
        return "kernel"
    if leaf.startswith("libpython") or _is_python(frames[-1]):
        return "interpreter"
    return leaf


def _is_python(frame: str) -> bool:
    return frame.split(":", 1)[0].endswith(".py") or frame.startswith("<frozen")


def _area(frames: list[str], innermost_python: str) -> str:
    """Kernel, a native library, or Python code (interpreter time included) by package."""
    leaf = frames[-1].split(":", 1)[0]
    if leaf == "kernel":
        return "kernel"
    if not leaf.startswith("libpython") and not _is_python(frames[-1]):
        return f"native {leaf}"
    package = innermost_python.split(":", 1)[0].split("/")[0]
    return f"python {package}"


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), Path(__file__).resolve().parent.parent)["text"])
