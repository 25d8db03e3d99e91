"""Build sfu/_fanout (the C fan-out step in fanout.c) with cffi.

scripts/bootstrap.sh runs `python -m sfu.fanout_build`; it rebuilds only when
fanout.c or this file changed, so it is cheap to run every time.
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

DECLARATIONS = """
struct fanout_wire { void *session; void *protect; int fd; ...; };
struct fanout_target {
    struct fanout_wire *wire;
    uint32_t ssrc;
    uint32_t ts_offset;
    uint16_t seq_offset;
    uint8_t payload_type;
    uint8_t audio_level_id;
    uint64_t packets;
    uint64_t octets;
    uint64_t failures;
};
int fanout_set_address(struct fanout_wire *wire, const char *host, int port);
int fanout_send(struct fanout_target **targets, int count,
                int marker, int seq, uint32_t timestamp, int audio_level,
                const uint8_t *payload, int size);
"""


def _digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes() + Path(__file__).read_bytes()).hexdigest()


def built() -> bool:
    return any(HERE.glob("_fanout.*.so")) and STAMP.exists() and STAMP.read_text() == _digest()


def build() -> Path:
    builder = cffi.FFI()
    builder.cdef(DECLARATIONS)
    builder.set_source("_fanout", SOURCE.read_text(), extra_compile_args=["-O2"])
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
