"""Event type names and patterns, and EventBridge-style payload filters.

Event types are lowercase dotted names (`order.created`). A pattern is a name, `prefix.*`
(any type below `prefix`, at any depth) or `*` (every type).

A filter is a JSON object shaped like the events it matches (the semantics of Amazon
EventBridge content filtering): nested objects descend into the event; a leaf is a non-empty
array of matchers, any of which may match (OR), and every field of the filter must match
(AND). If the event's value is an array, one matching element is enough. Matchers:
exact values (string, number, boolean, null), `{"prefix": s}`, `{"suffix": s}`,
`{"equals-ignore-case": s}`, `{"anything-but": value | [values] | {"prefix"|"suffix": s}}`,
`{"numeric": [op, n]}` or `[op, n, op, n]` with op in `= < <= > >=`, `{"exists": bool}`.
`{}` matches every event.
"""

import json
import operator
import re

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
MAX_NAME = 200
MAX_DEPTH = 10
MAX_MATCHERS = 256
NUMERIC_OPS = ("=", "<", "<=", ">", ">=")
MISSING = object()


class PatternError(ValueError):
    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = list(path or [])


# --- event types -------------------------------------------------------------------------


def validate_event_type_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise PatternError("An event type name is required.")
    if len(name) > MAX_NAME:
        raise PatternError(f"At most {MAX_NAME} characters.")
    if not NAME_RE.match(name):
        raise PatternError(
            "Lowercase dotted segments of letters, digits, '_' and '-' (order.created)."
        )


def validate_event_type_pattern(pattern: str) -> None:
    if pattern == "*":
        return
    if isinstance(pattern, str) and pattern.endswith(".*"):
        try:
            validate_event_type_name(pattern[:-2])
        except PatternError as exc:
            raise PatternError(f"{exc} A '*' may only end a pattern (order.*).") from None
        return
    if isinstance(pattern, str) and "*" in pattern:
        raise PatternError("A '*' may only be a whole last segment (order.*) or alone.")
    validate_event_type_name(pattern)


def event_type_matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


# --- filters: validation ------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def validate_filter(pattern) -> None:
    if not isinstance(pattern, dict):
        raise PatternError("A filter is a JSON object.")
    count = [0]
    _validate_object(pattern, [], count)


def _validate_object(node: dict, path: list, count: list) -> None:
    if len(path) >= MAX_DEPTH:
        raise PatternError(f"Filters nest at most {MAX_DEPTH} levels.", path)
    for key, value in node.items():
        here = [*path, key]
        if isinstance(value, dict):
            if not value:
                raise PatternError("An empty object matches nothing; remove it.", here)
            _validate_object(value, here, count)
        elif isinstance(value, list):
            if not value:
                raise PatternError("A list of matchers may not be empty.", here)
            for matcher in value:
                count[0] += 1
                if count[0] > MAX_MATCHERS:
                    raise PatternError(f"At most {MAX_MATCHERS} matchers in a filter.", here)
                _validate_matcher(matcher, here)
        else:
            raise PatternError(
                'A leaf is a list of matchers, e.g. ["EUR"] or [{"prefix": "a"}].', here
            )


def _anything_but_problem(arg) -> str | None:
    if isinstance(arg, dict):
        (op, value), *more = arg.items() or [(None, None)]
        ok = not more and op in ("prefix", "suffix") and isinstance(value, str)
        return None if ok else "'anything-but' takes a value, a list of values, or {\"prefix\": s}."
    if isinstance(arg, list):
        ok = bool(arg) and all(_is_scalar(v) for v in arg)
        return None if ok else "'anything-but' takes a non-empty list of values."
    return None if _is_scalar(arg) else "'anything-but' takes a value or a list of values."


def _numeric_problem(arg) -> str | None:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        return "'numeric' takes [op, n] or [op, n, op, n]."
    if all(arg[i] in NUMERIC_OPS and _is_number(arg[i + 1]) for i in range(0, len(arg), 2)):
        return None
    return f"'numeric': operators are {' '.join(NUMERIC_OPS)}, each followed by a number."


def _takes(kind, message):
    return lambda arg: None if isinstance(arg, kind) else message


# operator → what is wrong with its argument (None: nothing)
MATCHER_RULES = {
    "prefix": _takes(str, "'prefix' takes a string."),
    "suffix": _takes(str, "'suffix' takes a string."),
    "equals-ignore-case": _takes(str, "'equals-ignore-case' takes a string."),
    "exists": _takes(bool, "'exists' takes true or false."),
    "anything-but": _anything_but_problem,
    "numeric": _numeric_problem,
}


def _validate_matcher(matcher, path: list) -> None:
    if _is_scalar(matcher):
        return
    if not isinstance(matcher, dict) or len(matcher) != 1:
        raise PatternError("A matcher is a value or an object with one operator.", path)
    ((op, arg),) = matcher.items()
    rule = MATCHER_RULES.get(op)
    if rule is None:
        raise PatternError(f"Unknown operator {_as_json(op)}.", path)
    problem = rule(arg)
    if problem:
        raise PatternError(problem, path)


# --- filters: matching --------------------------------------------------------------------


_COMPARE = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: str, value, bound) -> bool:
    return _COMPARE[op](value, bound)


def _matches_value(matcher, value) -> bool:
    if not isinstance(matcher, dict):
        if matcher is None or isinstance(matcher, bool) or value is None or isinstance(value, bool):
            return matcher is value or (matcher == value and type(matcher) is type(value))
        if _is_number(matcher):
            return _is_number(value) and matcher == value
        return matcher == value
    ((op, arg),) = matcher.items()
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == arg.lower()
    if op == "numeric":
        if not _is_number(value):
            return False
        return all(_compare(arg[i], value, arg[i + 1]) for i in range(0, len(arg), 2))
    if op == "anything-but":
        if isinstance(arg, dict):
            ((kind, text),) = arg.items()
            if not isinstance(value, str):
                return True
            return not (value.startswith(text) if kind == "prefix" else value.endswith(text))
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_matches_value(v, value) for v in excluded)
    return False


def _match_leaf(matchers: list, value) -> bool:
    for matcher in matchers:
        if isinstance(matcher, dict) and "exists" in matcher:
            if matcher["exists"] == (value is not MISSING):
                return True
            continue
        if value is MISSING:
            continue
        values = value if isinstance(value, list) else [value]
        if any(_matches_value(matcher, v) for v in values):
            return True
    return False


def _as_json(value) -> str:
    """A value as the user wrote it (JSON: `["a","b"]`, `true`, `null`), never Python's repr:
    the reasons are shown on the portal's tester and returned by the API."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _walk(pattern: dict, event, path: list, reasons: list) -> bool:
    ok = True
    for key, sub in pattern.items():
        here = [*path, key]
        value = event.get(key, MISSING) if isinstance(event, dict) else MISSING
        if isinstance(sub, dict):
            if isinstance(value, dict):
                matched = _walk(sub, value, here, reasons)
            else:
                matched = False
                reasons.append(
                    {
                        "path": ".".join(map(str, here)),
                        "matched": False,
                        "detail": "missing" if value is MISSING else "not an object",
                    }
                )
        else:
            matched = _match_leaf(sub, value)
            shown = "missing" if value is MISSING else _as_json(value)
            verb = "matches" if matched else "does not match"
            reasons.append(
                {
                    "path": ".".join(map(str, here)),
                    "matched": matched,
                    "detail": f"{shown} {verb} any of {_as_json(sub)}",
                }
            )
        ok = ok and matched
    return ok


def _matches(pattern: dict, event) -> bool:
    """`_walk` without the reasons (the routing path: no text built per leaf)."""
    for key, sub in pattern.items():
        value = event.get(key, MISSING) if isinstance(event, dict) else MISSING
        if isinstance(sub, dict):
            if not (isinstance(value, dict) and _matches(sub, value)):
                return False
        elif not _match_leaf(sub, value):
            return False
    return True


def filter_matches(pattern: dict, event: dict) -> bool:
    return _matches(pattern or {}, event)


def explain(pattern: dict, event: dict) -> dict:
    reasons: list = []
    matched = _walk(pattern or {}, event, [], reasons)
    return {"matches": matched, "reasons": reasons}
