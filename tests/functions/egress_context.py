"""A Lambda context whose deadline the test sets: the egress reads the time left from it."""

import time


class Deadline:
    """`get_remaining_time_in_millis()` counts down from `seconds` in real time."""

    function_name = "egress"
    aws_request_id = "test"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:egress"
    memory_limit_in_mb = 512

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.at - time.monotonic()) * 1000)
