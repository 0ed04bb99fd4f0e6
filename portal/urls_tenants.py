"""URLs of a tenant host (<slug>.<base domain>): self-service pages and the tenant API."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from broker import api as broker_api
from broker.api import config as config_api
from broker.deadletters import api as dead_letters_api
from broker.sync import api as sync_api
from portal.pages import config as views_config
from portal.pages import configcode as views_configcode
from portal.pages import subscriptions as views_subscriptions
from portal.pages import views
from portal.pages.urls_common import urlpatterns as common
from portal.pages.urls_deadletters import tenant_urlpatterns as dead_letter_pages
from portal.pages.urls_deliveries import urlpatterns as deliveries
from tenants import api_members

router = SimpleRouter()
router.register("members", api_members.MemberViewSet, basename="member")
router.register("producers", broker_api.ProducerViewSet, basename="producer")
router.register("consumers", broker_api.ConsumerViewSet, basename="consumer")
router.register("subscriptions", broker_api.SubscriptionViewSet, basename="subscription")
router.register("event-types", broker_api.EventTypeViewSet, basename="event-type")
router.register("audit-events", broker_api.AuditEventViewSet, basename="audit-event")
router.register("dead-letters", dead_letters_api.DeadLetterViewSet, basename="dead-letter")
router.register("replay-jobs", dead_letters_api.ReplayJobViewSet, basename="replay-job")

urlpatterns = [
    *common,
    path("", views.home, name="home"),
    path("members/invite/", views.member_invite, name="member-invite"),
    path("members/<int:membership_id>/", views.member_change, name="member-change"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("config/", views_config.config_page, name="config"),
    path("config/revisions/", views_configcode.revisions_page, name="config-revisions-page"),
    path(
        "config/revisions/<int:number>/rollback/",
        views_configcode.rollback_page,
        name="config-rollback-page",
    ),
    path("config/as-code/", views_configcode.as_code_page, name="config-as-code-page"),
    path(
        "config/consumer/<uuid:object_id>/edit/",
        views_config.consumer_edit,
        name="config-consumer-edit",
    ),
    path(
        "config/producer/<uuid:object_id>/edit/",
        views_config.producer_edit,
        name="config-producer-edit",
    ),
    path(
        "config/subscription/<uuid:object_id>/edit/",
        views_config.subscription_edit,
        name="config-subscription-edit",
    ),
    path(
        "config/subscription/<uuid:object_id>/test-filter/",
        views_subscriptions.subscription_test_filter,
        name="config-subscription-test-filter",
    ),
    path(
        "config/subscription/<uuid:object_id>/test-event/",
        views_subscriptions.subscription_test_event,
        name="config-subscription-test-event",
    ),
    path(
        "config/<slug:kind>/<uuid:object_id>/<slug:action>/",
        views_config.config_action,
        name="config-action",
    ),
    path("api/v1/me/", api_members.MeView.as_view(), name="me"),
    path("api/v1/sync-status/", sync_api.TenantSyncStatusView.as_view(), name="sync-status"),
    *dead_letter_pages,
    path("api/v1/dlq-alerts/", dead_letters_api.DlqAlertsView.as_view(), name="dlq-alerts"),
    *deliveries,
    path("api/v1/config/export/", config_api.ExportView.as_view(), name="config-export"),
    path("api/v1/config/plan/", config_api.PlanView.as_view(), name="config-plan"),
    path("api/v1/config/apply/", config_api.ApplyView.as_view(), name="config-apply"),
    path("api/v1/config/rollback/", config_api.RollbackView.as_view(), name="config-rollback"),
    path(
        "api/v1/config/revisions/",
        config_api.RevisionListView.as_view(),
        name="config-revisions",
    ),
    path(
        "api/v1/config/revisions/<int:number>/",
        config_api.RevisionDocumentView.as_view(),
        name="config-revision",
    ),
    path("api/v1/config/diff/", config_api.DiffView.as_view(), name="config-diff"),
    path("api/v1/", include(router.urls)),
]

# Under /api/ the JSON error shape, elsewhere the usual pages (core/http.py).
handler400 = "core.http.bad_request"
handler404 = "core.http.page_not_found"
handler500 = "core.http.server_error"
