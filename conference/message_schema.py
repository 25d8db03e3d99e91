"""The JSON Schema of each client→server WebSocket message (message_schemas/<type>.json).

The same files are the reference in docs/signaling.md and what the tests hold the
clients to. A message that breaks its schema becomes a ``bad-request`` naming the field,
in words taken from the schema's ``description``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_DIR = Path(__file__).resolve().parent / "message_schemas"


@cache
def validators() -> dict[str, Draft202012Validator]:
    """Validator by message type, for every type a client may send."""
    found = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        found[path.stem] = Draft202012Validator(schema)
    return found


def problem(message: dict) -> str | None:
    """What is wrong with ``message``, or None if it fits its type's schema (or its type
    has none: the caller answers unknown types)."""
    validator = validators().get(message["type"])
    if validator is None:
        return None
    error = best_match(validator.iter_errors(message))
    return None if error is None else _describe(error, validator.schema)


def _describe(error: ValidationError, schema: dict) -> str:
    path = list(error.absolute_path)
    if not path:
        return error.message  # e.g. "'token' is a required property"
    field = ".".join(str(p) for p in path)
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    if description is None:
        description = schema["properties"].get(str(path[0]), {}).get("description")
    return f"'{field}' {description}" if description else f"'{field}': {error.message}"
