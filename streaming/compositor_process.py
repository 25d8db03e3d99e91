"""The compositor in its own process: decoding and encoding never hold up the server's
event loop, and a crash in a codec takes only the program down, not the room.

The parent (`CompositorProcess`) writes media and scenes to the child's stdin and reads
the init segment and parts from its stdout; the child logs to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from . import wire
from .program import ProgramFormat

log = logging.getLogger("telemed.compositor")

ROOT = Path(__file__).resolve().parent.parent
MAX_BACKLOG = 8 * 1024 * 1024  # bytes queued for a child that is not keeping up: drop video beyond


class CompositorProcess:
    """The parent's handle on one compositor child."""

    def __init__(self, program: ProgramFormat) -> None:
        self.program = program
        self._proc: asyncio.subprocess.Process | None = None
        self.dropped = 0

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streaming.compositor_process", json.dumps(self.program.to_dict()),
            cwd=str(ROOT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def send(self, message: tuple, droppable: bool = False) -> bool:
        """Queue a message; media is dropped (False) while the child is behind."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return False
        if droppable and proc.stdin.transport.get_write_buffer_size() > MAX_BACKLOG:
            self.dropped += 1
            return False
        proc.stdin.write(wire.pack(message))
        return True

    async def messages(self) -> AsyncIterator[tuple]:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while True:
            try:
                header = await stdout.readexactly(wire.HEADER.size)
                (size,) = wire.HEADER.unpack(header)
                if size > wire.MAX_MESSAGE:
                    raise ValueError("oversized message from the compositor")
                yield wire.unpack(await stdout.readexactly(size))
            except asyncio.IncompleteReadError:
                return

    async def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(wire.pack(("stop",)))
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()  # our own child, by its handle
            await proc.wait()


def _main() -> None:
    from .compositor import Compositor
    from .scene import Scene

    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    program = ProgramFormat(**json.loads(sys.argv[1]))
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the message stream
    out_lock = threading.Lock()

    def emit(message: tuple) -> None:
        with out_lock:
            out.write(wire.pack(message))
            out.flush()

    compositor = Compositor(program, emit)
    stopped = threading.Event()

    def reader() -> None:
        stdin = sys.stdin.buffer
        try:
            while header := stdin.read(wire.HEADER.size):
                if len(header) < wire.HEADER.size:
                    break
                (size,) = wire.HEADER.unpack(header)
                message = wire.unpack(stdin.read(size))
                kind = message[0]
                if kind == "video":
                    compositor.video(message[1], message[2], message[3])
                elif kind == "audio":
                    compositor.audio(message[1], message[2])
                elif kind == "scene":
                    compositor.set_scene(Scene.from_dict(message[1]))
                elif kind == "forget":
                    compositor.forget(message[1])
                elif kind == "stop":
                    break
        except Exception:
            log.exception("compositor input failed")
        finally:
            stopped.set()

    threading.Thread(target=reader, daemon=True).start()
    for index, (init, codecs) in enumerate(compositor.init_segments()):
        emit(("init", index, init, codecs, compositor.wall_start))
    try:
        while not stopped.is_set():
            stopped.wait(compositor.tick())
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    _main()
