"""Real processes for the data plane's end-to-end tests: the local runner and the demo receiver,
each `python -m …` in its own process against the session's moto server."""

import pytest


@pytest.fixture
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-logs")
