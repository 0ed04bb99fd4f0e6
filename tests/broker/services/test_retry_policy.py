"""The retry policy is declared (broker/services/retry_policy.py): defaults, bounds, strict
JSON types, the tier's cap on attempts (kept, not raised, when the cap was lowered)."""

import pytest

from broker.services.retry_policy import normalize_retry_policy

pytestmark = pytest.mark.django_db  # the folder's fixtures need the test database


def check(policy, *, cap=10, previous=None):
    errors: dict = {}
    out = normalize_retry_policy(
        policy, max_attempts=cap, errors=errors, previous_attempts=previous
    )
    return out, errors.get("retry_policy", [])


def test_no_policy_is_exponential_with_the_defaults_and_the_tiers_attempts():
    assert check(None) == (
        {
            "strategy": "exponential",
            "base_seconds": 5,
            "cap_seconds": 3600,
            "jitter": True,
            "max_attempts": 10,
        },
        [],
    )


def test_a_schedule_sets_its_attempts_and_may_come_back_as_read():
    out, problems = check({"strategy": "schedule", "schedule": [5, 60], "max_attempts": 3})
    assert out == {"strategy": "schedule", "schedule": [5, 60], "max_attempts": 3}
    assert problems == []


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ({"strategy": "exponential", "base_seconds": "5"}, "base_seconds"),
        ({"strategy": "exponential", "base_seconds": True}, "base_seconds"),
        ({"strategy": "exponential", "jitter": "yes"}, "jitter"),
        ({"strategy": "exponential", "cap_seconds": 90_000}, "cap_seconds"),
        ({"strategy": "exponential", "base_seconds": 60, "cap_seconds": 10}, "at least"),
        ({"strategy": "exponential", "surprise": 1}, "surprise: Unknown field."),
        ({"strategy": "schedule", "schedule": []}, "schedule"),
        ({"strategy": "schedule", "schedule": [5, 0]}, "schedule"),
        ({"strategy": "schedule", "schedule": [5], "max_attempts": 5}, "length plus one"),
        ({"strategy": "linear"}, "strategy"),
        ("exponential", "An object."),
    ],
)
def test_a_bad_policy_names_what_is_wrong(policy, words):
    _, problems = check(policy)
    assert problems and any(words in p for p in problems), problems


def test_attempts_above_the_cap_are_refused_unless_the_stored_policy_had_them():
    policy = {"strategy": "exponential", "max_attempts": 12}
    assert "max_delivery_attempts" in check(policy, cap=10)[1][0]
    assert check(policy, cap=10, previous=12)[1] == []  # the cap was lowered since
    assert check({**policy, "max_attempts": 13}, cap=10, previous=12)[1]  # raising: refused
