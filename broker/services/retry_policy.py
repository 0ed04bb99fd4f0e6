"""A consumer's retry policy, declared as serializers: exponential backoff or a schedule.

Attempts never exceed the tier's cap (max_delivery_attempts), unless the stored policy
already had as many (the cap was lowered since: kept, not raised).
"""

from rest_framework import serializers

from core.api import StrictSerializer

FIELD = "retry_policy"


class StrictInteger(serializers.IntegerField):
    """An integer in the JSON, not "5", 5.0 or true."""

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBoolean(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class Exponential(StrictSerializer):
    strategy = serializers.ChoiceField(["exponential"])
    base_seconds = StrictInteger(min_value=1, max_value=3600, default=5)
    cap_seconds = StrictInteger(min_value=1, max_value=86_400, default=3600)
    jitter = StrictBoolean(default=True)
    max_attempts = StrictInteger(min_value=1, required=False)

    def validate(self, attrs):
        if attrs["cap_seconds"] < attrs["base_seconds"]:
            raise serializers.ValidationError(
                {"cap_seconds": ["cap_seconds must be at least base_seconds."]}
            )
        return attrs


class Schedule(StrictSerializer):
    strategy = serializers.ChoiceField(["schedule"])
    schedule = serializers.ListField(
        child=StrictInteger(min_value=1, max_value=86_400), min_length=1
    )
    # Follows from the schedule; stored, so it may come back as read.
    max_attempts = StrictInteger(min_value=1, required=False)

    def validate(self, attrs):
        attempts = len(attrs["schedule"]) + 1
        if attrs.setdefault("max_attempts", attempts) != attempts:
            raise serializers.ValidationError(
                {"max_attempts": [f"The schedule's length plus one ({attempts}), or left out."]}
            )
        return attrs


STRATEGIES = {"exponential": Exponential, "schedule": Schedule}


def _messages(detail, prefix="") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _messages(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for item in detail for m in _messages(item, prefix)]
    return [f"{prefix}{detail}"]


def normalize_retry_policy(
    policy, *, max_attempts: int, errors: dict, previous_attempts: int | None = None
) -> dict:
    """The policy with its defaults filled in; problems go to errors["retry_policy"]."""
    if policy in (None, {}):
        policy = {"strategy": "exponential"}
    if not isinstance(policy, dict):
        errors.setdefault(FIELD, []).append("An object.")
        return {}
    strategy = STRATEGIES.get(policy.get("strategy", "exponential"))
    if strategy is None:
        errors.setdefault(FIELD, []).append("strategy: 'exponential' or 'schedule'.")
        return {}
    body = strategy(data={"strategy": "exponential", **policy})
    if not body.is_valid():
        errors.setdefault(FIELD, []).extend(_messages(body.errors))
        return {}
    out = dict(body.validated_data)
    out.setdefault("max_attempts", max_attempts)
    raising = previous_attempts is None or out["max_attempts"] > previous_attempts
    if out["max_attempts"] > max_attempts and raising:
        errors.setdefault(FIELD, []).append(
            f"At most {max_attempts} delivery attempts on your plan (max_delivery_attempts)."
        )
    return out
