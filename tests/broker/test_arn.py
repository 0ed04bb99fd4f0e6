import pytest

from broker.functions.shared.arn import ArnError, parse_sqs_arn, queue_url_from_arn


def test_a_queue_arn_is_parsed_into_its_parts():
    arn = parse_sqs_arn("arn:aws:sqs:eu-west-1:123456789012:orders-in")
    assert (arn.partition, arn.region, arn.account, arn.name) == (
        "aws",
        "eu-west-1",
        "123456789012",
        "orders-in",
    )
    assert not arn.fifo
    assert parse_sqs_arn("arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q.fifo").fifo
    assert parse_sqs_arn("arn:aws-cn:sqs:cn-north-1:123456789012:q").partition == "aws-cn"


@pytest.mark.parametrize(
    "value, message",
    [
        ("arn:aws:sqs:eu-west-1:123456789012", "six parts"),
        ("arn:aws:sns:eu-west-1:123456789012:topic", "Not an SQS"),
        ("arn:aws:sqs:mars-1:123456789012:q", "region"),
        ("arn:aws:sqs:eu-west-1:12345:q", "12 digits"),
        ("arn:nope:sqs:eu-west-1:123456789012:q", "partition"),
        ("arn:aws:sqs:eu-west-1:123456789012:bad name", "Queue names"),
        ("arn:aws:sqs:eu-west-1:123456789012:" + "q" * 81, "Queue names"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "SQS queue ARN"),
    ],
)
def test_malformed_arns_are_refused_with_the_part_at_fault(value, message):
    with pytest.raises(ArnError, match=message):
        parse_sqs_arn(value)


def test_the_queue_url_comes_from_the_arn():
    arn = "arn:aws:sqs:eu-west-1:123456789012:q"
    assert queue_url_from_arn(arn) == "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
    assert (
        queue_url_from_arn(arn, "http://127.0.0.1:4566") == "http://127.0.0.1:4566/123456789012/q"
    )
