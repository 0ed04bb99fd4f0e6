"""One table of JSON inputs, read by both parsers: the portal's API parser
(`core.parsers.SafeJSONParser`) and the ingress's (`jsontext.loads`, behind
`envelope.parse_json`). Whatever one refuses the other refuses, so nothing the ingress accepts
is content the portal (or SQS, DynamoDB, PostgreSQL, a strict renderer) cannot take later."""

import io

import pytest
from rest_framework.exceptions import ParseError

from broker.functions.ingress import envelope
from broker.functions.ingress.errors import IngressError
from core.parsers import SafeJSONParser


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


REFUSED = {
    "lone high surrogate": rb'{"data": "a\ud800"}',
    "lone low surrogate": rb'{"data": "\udfff b"}',
    "lone surrogate in the producer's id": rb'{"type": "a.b", "id": "x\ud83d", "data": 1}',
    "lone surrogate in a key": rb'{"data": {"k\udc00": 1}}',
    "surrogates in the wrong order": rb'{"data": "\ude00\ud83d"}',
    "surrogate encoded as UTF-8 bytes": b'{"data": "\xed\xa0\x80"}',
    "U+0000 escaped": rb'{"data": "a\u0000b"}',
    "U+0000 in a key": rb'{"data": {"\u0000": 1}}',
    "raw NUL byte in a string": b'{"data": "a\x00b"}',
    "NaN": b'{"data": NaN}',
    "Infinity": b'{"data": Infinity}',
    "-Infinity": b'{"data": [-Infinity]}',
    "1e999": b'{"data": 1e999}',
    "-1e400": b'{"data": -1e400}',
    "an integer beyond a double": b'{"data": 1' + b"0" * 400 + b"}",
    "65 levels": _nested(65),
    "1,000 levels": _nested(1000),
    "100,000 levels": _nested(100_000),
    "65 levels of objects": b'{"a":' * 65 + b"1" + b"}" * 65,
    "not UTF-8": b'{"data": "\xff"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"data": 1}',
    "trailing garbage": b'{"data": 1} x',
    "a single quote string": b"{'data': 1}",
}

ACCEPTED = {
    "paired surrogates (an emoji)": (rb'{"data": "\ud83d\ude00"}', {"data": "\N{GRINNING FACE}"}),
    "U+FFFE and U+FFFF are characters": (rb'{"data": "\ufffe\uffff"}', {"data": "\ufffe\uffff"}),
    "CJK as UTF-8": ('{"data": "注文"}'.encode(), {"data": "注文"}),
    "an escaped backslash before u": (rb'{"data": "\\ud800"}', {"data": "\\ud800"}),
    "64 levels": (_nested(64), None),
    "64 levels with brackets in strings": (
        b'{"s": "[[[[{{{{", "d":' + _nested(63) + b"}",
        None,
    ),
    "the largest double": (b'{"n": 1.7976931348623157e308}', {"n": 1.7976931348623157e308}),
    "an underflow is zero": (b'{"n": 1e-400}', {"n": 0.0}),
    "a long integer within range": (b'{"n": ' + b"9" * 300 + b"}", {"n": int("9" * 300)}),
}


def _portal(raw: bytes):
    return SafeJSONParser().parse(io.BytesIO(raw), "application/json", {})


def _ingress(raw: bytes):
    return envelope.parse_json(raw)


PARSERS = {"portal": (_portal, ParseError), "ingress": (_ingress, IngressError)}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("raw", REFUSED.values(), ids=REFUSED.keys())
def test_both_parsers_refuse_json_a_later_reader_cannot_read(parser, raw):
    parse, error = PARSERS[parser]
    with pytest.raises(error) as caught:
        parse(raw)
    if parser == "ingress":
        assert caught.value.code == "parse_error" and caught.value.status == 400


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("raw,expected", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_both_parsers_accept_json_every_reader_can_read(parser, raw, expected):
    parse, _ = PARSERS[parser]
    value = parse(raw)
    if expected is not None:
        assert value == expected


def test_the_depth_scan_does_not_recurse_whatever_the_depth():
    import sys

    deep = _nested(sys.getrecursionlimit() * 50)
    with pytest.raises(IngressError, match="deeper than 64"):
        _ingress(deep)
