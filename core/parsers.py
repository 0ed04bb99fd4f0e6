"""The API's JSON parser: DRF's, with the limits a hostile or careless body runs into.

Everything here answers a 400 (413 for size) in the usual error shape instead of a 500:

- nesting deeper than `MAX_JSON_DEPTH` (Python's decoder recurses: ~1,000 levels raise
  RecursionError, and fewer still blow up later in validators and the JSON renderer);
- NUL characters (PostgreSQL text and jsonb cannot hold U+0000) and lone surrogates
  (not encodable as UTF-8), in keys and values alike;
- numbers that overflow a double (`1e400` parses as infinity, which JSON cannot render;
  a 400-digit integer is infinity to most consumers);
- a body above `DATA_UPLOAD_MAX_MEMORY_SIZE`: DRF reads the request stream itself, so
  Django's own check (on `request.body`) never runs for the API.
"""

import codecs
import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

# Deep enough for any sane event schema or filter (item-level limits are tighter, see
# broker.services); shallow enough that nothing downstream recurses into trouble.
MAX_JSON_DEPTH = 64


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "NUL characters (\\u0000) are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Lone surrogate escapes (\\ud800-\\udfff) are not allowed."
    return None


def check_json_value(value, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` (parsed JSON) is unacceptable, or None. Iterative: no recursion to blow."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = _bad_string(item)
            if problem:
                return problem
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels."
            if isinstance(item, dict):
                for key, child in item.items():
                    problem = _bad_string(key)
                    if problem:
                        return problem
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"Number out of range: {text[:40]}")
    return number


_MAX_DOUBLE = float.fromhex("0x1.fffffffffffffp+1023")


def _double_range_int(text: str) -> int:
    # An integer beyond a double's range reads as Infinity (or null) in JavaScript and most
    # other consumers: refused like `1e400`. Only long literals need the comparison.
    number = int(text)
    if len(text) > 300 and abs(number) > _MAX_DOUBLE:
        raise ValueError(f"Number out of range: {text[:40]}…")
    return number


def _declared_length(parser_context) -> int | None:
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {}) if request is not None else {}
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return None


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = _declared_length(parser_context)
        if limit is not None and declared and declared > limit:
            raise RequestTooLarge()
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge()
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.decode(raw, encoding)
            data = json.loads(
                text,
                parse_constant=strict_constant if self.strict else None,
                parse_float=_finite_float,
                parse_int=_double_range_int,
            )
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
            raise ParseError(f"JSON parse error - {exc}")
        problem = check_json_value(data)
        if problem:
            raise ParseError(f"JSON parse error - {problem}")
        return data
