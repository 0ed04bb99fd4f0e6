"""The worker's app registers every task the beat schedule names, on its own: started as
`celery -A portal worker` starts it, in a fresh process that imports no URL conf (the web
process does; a worker never does), so no task is registered by an import chain that only the
web reaches."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What `celery -A portal worker` does before it consumes: find the app the way -A does, then
# the worker's start-up (the loader imports the task modules and sets Django up). Prints the
# registered tasks, the beat schedule's tasks and whether any URL conf was imported. Django's
# system checks, which the worker runs at start unless CELERY_SKIP_CHECKS is set, import the
# URL conf: skipped here, as a worker may skip them, so that only the worker's own imports
# register tasks.
PROBE = """
import json, sys
from celery.app.utils import find_app
app = find_app("portal")
app.loader.init_worker()
print(json.dumps({
    "registered": sorted(app.tasks),
    "scheduled": sorted({job["task"] for job in app.conf.beat_schedule.values()}),
    "urlconfs": sorted(m for m in sys.modules if m.startswith("portal.urls")),
}))
"""


def _start_worker_app() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "CELERY_SKIP_CHECKS": "1"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_beat_scheduled_task_is_registered_by_the_worker_app_alone():
    started = _start_worker_app()
    assert started["urlconfs"] == [], "the probe must not reach a URL conf"
    assert started["scheduled"], "the beat schedule is empty: the settings were not read"
    missing = sorted(set(started["scheduled"]) - set(started["registered"]))
    assert missing == []
    # The four dead-letter jobs, once registered only through the URL conf's imports.
    assert {
        "broker.deadletters.tasks.dlq_ingest_tick",
        "broker.deadletters.tasks.replay_jobs_resume",
        "broker.deadletters.tasks.dlq_alerts_tick",
        "broker.deadletters.tasks.dlq_retention_tick",
    } <= set(started["registered"])
