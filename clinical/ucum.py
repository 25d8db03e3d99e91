"""UCUM unit codes checked by parsing them against the UCUM grammar and atom table.

``ucumvert`` carries the grammar of the UCUM specification (prefixes, atoms, exponents,
annotations, ``10*n`` factors) as a Lark grammar, so ``tera.l-1`` (no such atom) is
refused while ``10*3/uL`` and ``mL/min/{1.73_m2}`` pass.
"""

from __future__ import annotations

import re
import threading
from functools import cache

from lark import Lark
from lark.exceptions import LarkError
from ucumvert import get_ucum_parser

from clinical.errors import ClinicalError

MAX_UNIT = 64
_ANNOTATION = re.compile(r"\{[^{}]*\}")
# A divisor with a negative exponent ("g/l-1") parses, but means g.l: in a lab
# report it is a typo for g/l or g.l-1, and reading it either way would mislead.
_DOUBLE_NEGATION = re.compile(r"/[^./]*?[A-Za-z\]\d*]-\d")
# International units written without their brackets, as many US lab systems send
# them ("iU/mL", "IU/L"): unambiguous ("i" and "I" are no UCUM prefixes), so read as
# the UCUM atoms [iU] and [IU] rather than refused.
_BARE_IU = re.compile(r"(?<![\[\w])(iU|IU)(?![\w\]])")
_lock = threading.Lock()  # the Earley parser keeps per-parse state on the instance


@cache
def _parser() -> Lark:
    return get_ucum_parser()  # builds the grammar once (about half a second)


def check_ucum(code: object, error: str = "lab-unit") -> str:
    """``code`` as a valid case-sensitive UCUM expression, else ClinicalError."""
    if not isinstance(code, str) or not code or len(code) > MAX_UNIT or not code.isprintable():
        raise ClinicalError(error, f"unit {code!r} is not a UCUM code")
    code = _BARE_IU.sub(r"[\1]", code)
    try:
        with _lock:
            _parser().parse(code)
    except LarkError:
        raise ClinicalError(error, f"unit {code!r} is not valid UCUM") from None
    if _DOUBLE_NEGATION.search(_ANNOTATION.sub("", code)):
        raise ClinicalError(error, f"unit {code!r} divides by a negative power; write it as a product")
    return code
