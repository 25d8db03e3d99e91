"""The C steps of the media path (sfu/_fanout: the fan-out step, fanout.c, and the shared
port's receive step, port_receive.c) as a cffi builder.

Two ways in, one list of sources:
- `pip install .` / `pip wheel .`: setup.py names `sfu/fanout_build.py:ffibuilder` in
  `cffi_modules`, and cffi's setuptools integration compiles it into the wheel.
- The source tree (`./telemed serve`, `./telemed test`): `python sfu/fanout_build.py`
  (a script: importing the sfu package needs the module this builds) compiles it next
  to fanout.py, only when a source, the header or this file changed.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent
# What Python sees (cffi declarations), and every C file, in one place: the wheel, the
# stamp and the in-tree build read them.
HEADERS = [HERE / "fanout.h", HERE / "port_receive.h"]
SOURCES = [HERE / "fanout.c", HERE / "sockaddr.c", HERE / "port_receive.c"]
C_ONLY_HEADERS = [HERE / "sockaddr.h"]
STAMP = HERE / "_fanout.sha256"


def _builder() -> cffi.FFI:
    builder = cffi.FFI()
    builder.cdef("\n".join(path.read_text() for path in HEADERS))
    # The sources go in as text: cffi compiles from a temporary directory, where
    # relative paths would not resolve and setuptools refuses absolute ones.
    builder.set_source("sfu._fanout", "\n".join(path.read_text() for path in SOURCES),
                       include_dirs=[str(HERE)], extra_compile_args=["-O2"])
    return builder


ffibuilder = _builder()


def _digest() -> str:
    parts = [path.read_bytes() for path in (*SOURCES, *HEADERS, *C_ONLY_HEADERS, Path(__file__).resolve())]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def built() -> bool:
    return any(HERE.glob("_fanout.*.so")) and STAMP.exists() and STAMP.read_text() == _digest()


def build() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(ffibuilder.compile(tmpdir=tmp))
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
