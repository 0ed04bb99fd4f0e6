"""Real processes for the data plane's end-to-end tests: the local runner and the demo receiver,
each `python -m …` in its own process against the session's moto server."""

import pytest

from tests.helpers.e2e import IAM_REPORTS, Receiver


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    """The demo receiver in its own process, one per test module."""
    r = Receiver(log=tmp_path_factory.mktemp("receiver") / "receiver.log")
    yield r
    r.stop()


@pytest.fixture
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-logs")


def pytest_terminal_summary(terminalreporter):
    """Per runner: each function's recorded calls, distinct actions and denied calls."""
    if IAM_REPORTS:
        terminalreporter.section("AWS calls checked against the functions' roles")
        for text in IAM_REPORTS:
            terminalreporter.write_line(text)
