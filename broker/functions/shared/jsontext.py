"""JSON text that every later reader can read, one definition for the data plane and the portal.

What the ingress accepts ends up in SQS bodies, DynamoDB strings, PostgreSQL text, Python's
and the browser's JSON parsers and the consumer's. Each refuses something: SQS and DynamoDB
refuse strings that are not UTF-8 (lone surrogates) and SQS some characters; PostgreSQL
refuses U+0000; strict JSON renderers (DRF's) refuse NaN and infinities; Python's decoder
recurses (about 1,000 levels raise RecursionError). So:

- `loads(body)` is the ingress's parser: RFC 8259 JSON in UTF-8 only; no NaN, Infinity or
  number beyond a double's range; no string (key or value) holding a lone surrogate or
  U+0000; nesting at most `MAX_DEPTH` (the portal's limit, `core.parsers.MAX_JSON_DEPTH`),
  counted on the text before decoding, without recursion. Raises `JSONError`. The portal's
  API parser (`core.parsers`) applies the same rules; tests/functions/test_json_input_table.py
  runs one table of inputs through both.
- `dumps(value)` is how the data plane writes JSON into queue bodies and records: compact,
  UTF-8 as it is (a CJK character is 3 bytes, not a 6-byte `\\uXXXX`), except the characters
  SQS refuses in a body (U+FFFE, U+FFFF, lone surrogates from content stored before `loads`
  existed; control characters are escaped by JSON itself), which stay escaped. So the size
  of a body is its UTF-8 length, the unit SQS and DynamoDB count in.
- `readable(value)` turns content stored before these rules (NaN, infinities, lone
  surrogates) into something every renderer takes, and says whether it had to.
"""

import json
import math
import re
from itertools import accumulate

MAX_DEPTH = 64
_MAX_DOUBLE = float.fromhex("0x1.fffffffffffffp+1023")

# A JSON string (possessive, so a long string never backtracks); what is not a bracket.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_STRUCTURE = str.maketrans("", "", "0123456789,:.-+eE \n\r\ttruefalsn")
# The shape of number literals: digits as 0, `E` as `e`, `+` dropped (bytes.translate, C).
_NUMBER_SHAPE = bytes.maketrans(b"0123456789E", b"0000000000e")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters SQS refuses in a message body that JSON leaves unescaped (JSON escapes C0
# controls itself): https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
_SQS_REFUSED = re.compile("[\ud800-\udfff\ufffe\uffff]")


class JSONError(ValueError):
    """Input that is not JSON every reader can read; the message says what and where."""


def _constant(name: str):
    raise JSONError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity).")


def _float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise JSONError(f"The number {text[:40]} is beyond the range of a double.")
    return number


def _int(text: str) -> int:
    number = int(text)
    # Only a long literal can be out of range: the check costs nothing for ordinary ints.
    if len(text) > 300 and abs(number) > _MAX_DOUBLE:
        raise JSONError(f"The number {text[:40]}… is beyond the range of a double.")
    return number


def too_deep(text: str, max_depth: int = MAX_DEPTH) -> bool:
    """Does the JSON text nest containers deeper than `max_depth`? Counted on the text, not
    by parsing it, without recursion and without a Python-level loop per character: strings
    are cut out, everything but brackets dropped, and the running depth is summed by
    `itertools.accumulate` (all C string and iterator operations)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # the common case: too few brackets to be that deep
    if '\\"' in text:
        outside = _STRING.sub("", text)  # an escaped quote: a real string scanner
    else:
        outside = "".join(text.split('"')[::2])  # every other piece is inside a string
    # translate drops what JSON has outside strings (cheap); the regex what else is left.
    brackets = _NOT_BRACKET.sub("", outside.translate(_STRUCTURE))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > max_depth


def _may_overflow(raw: bytes) -> bool:
    """Could a number in the text be beyond a double's range? Only with a 3-digit exponent
    or 200 digits in a row (below both, a number is under 1e300). The parse hooks that check
    each number cost a Python call per number, so they run only when this says maybe (also
    for such digits inside a string: slower, never wrong)."""
    shape = raw.translate(_NUMBER_SHAPE, b"+")
    return b"e000" in shape or b"0" * 200 in shape


def _where(path: list) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def bad_string(value: str) -> str | None:
    """Why a string cannot be stored and sent everywhere (U+0000, a lone surrogate), or None."""
    found = _BAD_CHAR.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "U+0000 (\\u0000) is not allowed in a string."
    return f"A lone surrogate (\\u{ord(char):04x}) is not a Unicode character."


def check_strings(value) -> str | None:
    """The first string or key of a parsed value that `bad_string` refuses, with its path."""
    stack = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = bad_string(item)
            if problem:
                return f"{problem} At {_where(path)}."
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = bad_string(key)
                if problem:
                    return f"{problem} In a key at {_where(path)}."
                stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, i]) for i, child in enumerate(item))
    return None


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH):
    """Strict JSON (module docstring); raises JSONError."""
    if isinstance(body, bytes | bytearray):
        raw = bytes(body)
        try:
            text = raw.decode("utf-8")  # RFC 8259 §8.1: UTF-8 only
        except UnicodeDecodeError as exc:
            raise JSONError(f"The body is not UTF-8: {exc.reason} at byte {exc.start}.") from None
    else:
        text = body
        raw = body.encode("utf-8", "surrogatepass")
    if too_deep(text, max_depth):
        raise JSONError(f"JSON nested deeper than {max_depth} levels.")
    hooks = {"parse_float": _float, "parse_int": _int} if _may_overflow(raw) else {}
    try:
        value = json.loads(text, parse_constant=_constant, **hooks)
    except JSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JSONError(str(exc)) from None
    # U+0000 and lone surrogates can only come from \u escapes once the text is UTF-8 (and
    # JSON refuses raw control characters in strings): no escape, nothing to look for.
    if "\\u" in text:
        problem = check_strings(value)
        if problem:
            raise JSONError(problem)
    return value


def _escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(value) -> str:
    """Compact JSON, UTF-8 as it is, the characters SQS refuses escaped (module docstring).

    Those characters can only be inside JSON strings (everything outside is ASCII), where a
    `\\uXXXX` escape reads back as the same character."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if _SQS_REFUSED.search(text) is None:
        return text
    return _SQS_REFUSED.sub(_escape, text)


def size(value) -> int:
    """The bytes `dumps(value)` takes in UTF-8: what SQS and DynamoDB count."""
    return len(dumps(value).encode())


def readable(value):
    """(value, escaped): `value` with what a strict renderer refuses replaced, stored before
    `loads` refused it: NaN and infinities become the strings "NaN", "Infinity",
    "-Infinity"; a lone surrogate becomes the six characters of its escape (`\\ud800`).
    `escaped` says whether anything was replaced."""
    changed = False

    def fix(item):
        nonlocal changed
        if isinstance(item, float) and not math.isfinite(item):
            changed = True
            return "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
        if isinstance(item, str) and _SURROGATE.search(item):
            changed = True
            return _SURROGATE.sub(_escape, item)
        return item

    # Iterative copy: stored content may be deeper than anything recursion should walk.
    root = [value]
    stack = [(root, 0, value)]
    while stack:
        parent, key, item = stack.pop()
        if isinstance(item, dict):
            copy = {}
            parent[key] = copy
            for k, child in item.items():
                new_key = fix(k)
                copy[new_key] = None
                stack.append((copy, new_key, child))
        elif isinstance(item, list):
            copy = [None] * len(item)
            parent[key] = copy
            stack.extend((copy, i, child) for i, child in enumerate(item))
        else:
            parent[key] = fix(item)
    return root[0], changed
