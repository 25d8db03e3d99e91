"""FHIR JSON primitive types, checked strictly before the models see the payload.

fhir.resources' models coerce in pydantic's lax mode (and ignore ``strict=True``): the
string ``"6.3"`` becomes a decimal and the number ``20130402`` a date in 1970. FHIR's
JSON format fixes each primitive's JSON type (decimal and integer types are numbers,
boolean is true/false, everything else a string), so this walk refuses any other,
naming the path (``Observation.effectivePeriod.start``).
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import types
import typing
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.types import FhirBase
from pydantic import BaseModel

from clinical.errors import ClinicalError

_STRINGS = (str, datetime.datetime, datetime.date, datetime.time)
_MAX_DEPTH = 64


def check_json_types(payload: dict[str, Any], code: str = "fhir-type") -> None:
    kind = payload.get("resourceType")
    _resource(payload, str(kind), code, 0)


def _resource(data: dict[str, Any], path: str, code: str, depth: int) -> None:
    kind = data.get("resourceType")
    try:
        model = get_fhir_model_class(kind) if isinstance(kind, str) else None
    except (KeyError, ValueError, ImportError):
        model = None
    if model is not None:  # an unknown resourceType is the model's error to report
        _model(model, data, path, code, depth)


def _model(model: type[BaseModel], data: dict[str, Any], path: str, code: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ClinicalError(code, f"{path}: nested too deeply")
    fields = _fields(model)
    for key, value in data.items():
        annotation = fields.get(key)
        if annotation is not None and value is not None:
            _value(annotation, value, f"{path}.{key}", code, depth + 1)


def _value(annotation: Any, value: Any, path: str, code: str, depth: int) -> None:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            _value(inner[0], value, path, code, depth)
        return
    if origin in (list, typing.List):  # noqa: UP006 (the models use typing.List)
        if not isinstance(value, list):
            raise ClinicalError(code, f"{path} must be a JSON array")
        for i, item in enumerate(value):
            if item is not None:
                _value(args[0], item, f"{path}[{i}]", code, depth)
        return
    if origin is typing.Annotated:
        _primitive(args[0], value, path, code)
        return
    if annotation is bool:
        _primitive(bool, value, path, code)
        return
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        if not isinstance(value, dict):
            raise ClinicalError(code, f"{path} must be a JSON object")
        target = _model_class(annotation)
        if target is None:
            return
        if _is_resource_base(target):
            _resource(value, path, code, depth)
        else:
            _model(target, value, path, code, depth)


def _primitive(base: Any, value: Any, path: str, code: str) -> None:
    if base is bool:
        ok, kind = isinstance(value, bool), "true or false"
    elif base is int:
        ok, kind = type(value) is int, "a JSON integer"
    elif base is decimal.Decimal or base is float:
        ok, kind = type(value) in (int, float), "a JSON number"
    elif base in _STRINGS:
        ok, kind = isinstance(value, str), "a JSON string"
    else:
        return
    if not ok:
        raise ClinicalError(code, f"{path} must be {kind}, got {_json_name(value)} {_short(value)}")


@cache
def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


@cache
def _model_class(abc_type: type) -> type[BaseModel] | None:
    dotted = getattr(abc_type, "_model_klass", None)
    if not isinstance(dotted, str) or "." not in dotted:
        return None
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name, None)


def _is_resource_base(model: type[BaseModel]) -> bool:
    return model.__name__ in ("Resource", "DomainResource")


def _json_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
