"""Dead-letter pages (portal/pages/deadletters.py): tenant host and operator console."""

from django.urls import path

from portal.pages import deadletters as v

tenant_urlpatterns = [
    path("dead-letters/", v.dead_letters_page, name="dead-letters"),
    path("dead-letters/alerts/", v.dlq_alerts_update, name="dead-letters-alerts"),
    path("dead-letters/<uuid:letter_id>/", v.dead_letter_detail, name="dead-letter"),
    path("dead-letters/<slug:action>/", v.dead_letters_action, name="dead-letters-action"),
    path("replay-jobs/", v.replay_jobs_page, name="replay-jobs"),
    path("replay-jobs/<uuid:job_id>/cancel/", v.replay_job_cancel, name="replay-job-cancel"),
]

public_urlpatterns = [
    path("console/dlq/", v.console_dlq, name="console-dlq"),
    path(
        "console/quarantine/<int:entry_id>/<slug:action>/",
        v.console_quarantine_action,
        name="console-quarantine-action",
    ),
]
