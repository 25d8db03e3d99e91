"""Where our server's time goes: py-spy's collapsed stacks, summed per function.

py-spy samples the server from outside (`--nonblocking`, so it is never paused)
and, by default, only counts samples where a thread is running Python or native
code, not waiting in epoll: the percentages are shares of busy time.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _short(path: str, repo: Path) -> str:
    if path.startswith(str(repo) + "/"):
        return path[len(str(repo)) + 1 :]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


def _name(frame: str, repo: Path) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{_short(m.group('file'), repo)}:{m.group('func')}"


def summarize(raw: Path, repo: Path, top: int = 25) -> dict:
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    area_counts: Counter[str] = Counter()
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
        for f in set(frames):
            total_counts[f] += n
        area_counts[_area(frames)] += n

    def pct(counter: Counter[str]) -> list[dict]:
        return [{"function": k, "pct": round(100 * v / samples, 1)} for k, v in counter.most_common(top)]

    result = {"samples": samples, "top_self": pct(self_counts), "top_total": pct(total_counts),
              "by_area": pct(area_counts)}
    lines = [f"py-spy samples (busy only): {samples}", "", "self % (the function itself):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["top_self"]]
    lines += ["", "total % (function and what it calls):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["top_total"]]
    lines += ["", "by area (the innermost frame's package):"]
    lines += [f"  {e['pct']:5.1f}  {e['function']}" for e in result["by_area"]]
    result["text"] = "\n".join(lines) + "\n"
    return result


def _area(frames: list[str]) -> str:
    leaf = frames[-1].split(":", 1)[0]
    parts = leaf.split("/")
    return parts[0] + ":" if len(parts) > 1 else leaf + ":"


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), Path(__file__).resolve().parent.parent)["text"])
