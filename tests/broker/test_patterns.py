import pytest

from broker.functions.shared.patterns import (
    PatternError,
    event_type_matches,
    explain,
    filter_matches,
    validate_event_type_pattern,
    validate_filter,
)

EVENT = {
    "type": "order.created",
    "source": "shop",
    "data": {
        "amount": 150,
        "currency": "EUR",
        "customer": {"email": "Ada@Example.com", "vip": True},
        "tags": ["new", "gift"],
        "note": None,
    },
}


@pytest.mark.parametrize(
    "pattern, event_type, expected",
    [
        ("order.created", "order.created", True),
        ("order.created", "order.updated", False),
        ("order.*", "order.created", True),
        ("order.*", "order.created.v2", True),
        ("order.*", "orders.created", False),
        ("order.*", "order", False),
        ("*", "anything.at.all", True),
    ],
)
def test_event_type_patterns(pattern, event_type, expected):
    validate_event_type_pattern(pattern)
    assert event_type_matches(pattern, event_type) is expected


@pytest.mark.parametrize("pattern", ["Order.Created", "order.*.created", "order*", "", "a..b"])
def test_malformed_event_type_patterns_are_refused(pattern):
    with pytest.raises(PatternError):
        validate_event_type_pattern(pattern)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ({}, True),
        ({"source": ["shop"]}, True),
        ({"source": ["other", "shop"]}, True),
        ({"source": ["other"]}, False),
        ({"data": {"currency": [{"prefix": "EU"}]}}, True),
        ({"data": {"currency": [{"suffix": "UR"}]}}, True),
        ({"data": {"customer": {"email": [{"equals-ignore-case": "ada@example.com"}]}}}, True),
        ({"data": {"currency": [{"anything-but": ["USD", "GBP"]}]}}, True),
        ({"data": {"currency": [{"anything-but": "EUR"}]}}, False),
        ({"data": {"currency": [{"anything-but": {"prefix": "E"}}]}}, False),
        ({"data": {"amount": [{"numeric": [">", 100, "<=", 150]}]}}, True),
        ({"data": {"amount": [{"numeric": ["<", 100]}]}}, False),
        ({"data": {"amount": [150]}}, True),
        ({"data": {"amount": ["150"]}}, False),  # a string is not the number
        ({"data": {"customer": {"vip": [True]}}}, True),
        ({"data": {"note": [None]}}, True),
        ({"data": {"tags": ["gift"]}}, True),  # one element of an array is enough
        ({"data": {"refund": [{"exists": False}]}}, True),
        ({"data": {"refund": [{"exists": True}]}}, False),
        ({"data": {"amount": [{"exists": True}]}}, True),
        ({"data": {"amount": [{"numeric": [">", 0]}], "currency": ["USD"]}}, False),  # AND
        ({"data": {"customer": {"country": ["FR"]}}}, False),
    ],
)
def test_filters_match_like_eventbridge(pattern, expected):
    validate_filter(pattern)
    assert filter_matches(pattern, EVENT) is expected


@pytest.mark.parametrize(
    "pattern, path",
    [
        (["not an object"], []),
        ({"data": {"amount": "100"}}, ["data", "amount"]),
        ({"data": {"amount": []}}, ["data", "amount"]),
        ({"data": {"amount": [{"numeric": [">"]}]}}, ["data", "amount"]),
        ({"data": {"amount": [{"numeric": ["~", 1]}]}}, ["data", "amount"]),
        ({"data": {"kind": [{"wildcard-ish": "x"}]}}, ["data", "kind"]),
        ({"data": {"kind": [{"prefix": 1}]}}, ["data", "kind"]),
        ({"data": {"kind": [{"exists": "yes"}]}}, ["data", "kind"]),
        ({"data": {"kind": [{"anything-but": []}]}}, ["data", "kind"]),
        ({"data": {}}, ["data"]),
    ],
)
def test_bad_filters_are_refused_naming_the_path(pattern, path):
    with pytest.raises(PatternError) as exc:
        validate_filter(pattern)
    assert exc.value.path == path


def test_filters_are_bounded_in_depth_and_size():
    deep: dict = {"x": ["v"]}
    for _ in range(12):
        deep = {"n": deep}
    with pytest.raises(PatternError, match="nest"):
        validate_filter(deep)
    with pytest.raises(PatternError, match="matchers"):
        validate_filter({"x": list(range(300))})


def test_explain_says_which_field_failed_and_why():
    result = explain({"data": {"amount": [{"numeric": [">", 200]}], "currency": ["EUR"]}}, EVENT)
    assert result["matches"] is False
    by_path = {r["path"]: r for r in result["reasons"]}
    assert by_path["data.amount"]["matched"] is False and "150" in by_path["data.amount"]["detail"]
    assert by_path["data.currency"]["matched"] is True


def test_explain_shows_values_and_matchers_as_json_not_python():
    result = explain(
        {
            "data": {
                "tags": ["a", {"prefix": "x"}],
                "customer": {"vip": [False, None]},
                "note": [{"exists": True}],
                "amount": [{"anything-but": [1, 2]}],
            }
        },
        EVENT,
    )
    details = {r["path"]: r["detail"] for r in result["reasons"]}
    assert details == {
        "data.tags": '["new","gift"] does not match any of ["a",{"prefix":"x"}]',
        "data.customer.vip": "true does not match any of [false,null]",
        "data.note": 'null matches any of [{"exists":true}]',
        "data.amount": '150 matches any of [{"anything-but":[1,2]}]',
    }


def test_a_value_missing_from_the_event_is_said_so():
    (reason,) = explain({"data": {"colour": ["ünïcode"]}}, EVENT)["reasons"]
    assert reason["detail"] == 'missing does not match any of ["ünïcode"]'


def test_an_unknown_operator_is_named_in_json_quotes():
    with pytest.raises(PatternError) as caught:
        validate_filter({"x": [{"wildcard": "a*"}]})
    assert str(caught.value) == 'Unknown operator "wildcard".'
