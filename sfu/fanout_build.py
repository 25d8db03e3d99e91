"""Build sfu/_fanout (the C fan-out step in fanout.c) with cffi.

scripts/bootstrap.sh runs `python sfu/fanout_build.py` (a script: importing the
sfu package needs the module this builds); it rebuilds only when
fanout.c, fanout.h or this file changed, so it is cheap to run every time.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fanout.c"
STAMP = HERE / "_fanout.sha256"

HEADER = HERE / "fanout.h"


def _digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes() + HEADER.read_bytes() + Path(__file__).read_bytes()).hexdigest()


def built() -> bool:
    return any(HERE.glob("_fanout.*.so")) and STAMP.exists() and STAMP.read_text() == _digest()


def build() -> Path:
    builder = cffi.FFI()
    builder.cdef(HEADER.read_text())
    builder.set_source("_fanout", SOURCE.read_text(), include_dirs=[str(HERE)],
                       extra_compile_args=["-O2"])
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(builder.compile(tmpdir=tmp))
        for old in HERE.glob("_fanout.*.so"):
            old.unlink()
        target = HERE / library.name
        shutil.copy(library, target)
    STAMP.write_text(_digest())
    return target


if __name__ == "__main__":
    if built():
        sys.exit(0)
    print(f"fanout: built {build().name}", file=sys.stderr)
