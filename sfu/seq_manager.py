"""A consumer's sequence manager: the input numbering in, an output numbering without holes.

The state lives in C (`struct fanout_seq` in fanout.h) because the fan-out step steps
it for every packet it sends; this is the Python face for the rest: starting,
switching, dropping and answering NACKs.
"""

from __future__ import annotations

from typing import Any

from ._fanout import ffi, lib


class SeqManager:
    def __init__(self, c: Any = None, owner: Any = None) -> None:
        """`c`: a `struct fanout_seq *` inside `owner` (a fan-out target); else its own."""
        self.c = c if c is not None else ffi.new("struct fanout_seq *")
        self._owner = owner  # keeps the struct `c` points into alive

    def reset(self, next_output: int) -> None:
        """Before the first sync: the output numbering begins at `next_output`."""
        lib.fanout_seq_reset(self.c, next_output)

    def sync(self, input_seq: int) -> None:
        """`input_seq` (of whatever source comes now) is numbered right after the last output."""
        lib.fanout_seq_sync(self.c, input_seq)

    def drop(self, input_seq: int) -> None:
        """This input will not be sent: later ones close up behind it."""
        lib.fanout_seq_drop(self.c, input_seq)

    def input(self, input_seq: int) -> int | None:
        """The output number of a packet sent now; None for one from before the last sync."""
        output = lib.fanout_seq_input(self.c, input_seq)
        return None if output < 0 else output

    def original(self, output_seq: int) -> int | None:
        """The input behind an output number (a NACK asks by output), if any."""
        original = lib.fanout_seq_original(self.c, output_seq)
        return None if original < 0 else original

    @property
    def max_output(self) -> int:
        return self.c.max_output
