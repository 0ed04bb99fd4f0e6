"""URLs of the public host: operator console and API, admin, the seed control-plane API."""

from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from broker.deadletters import api as dead_letters_api
from broker.sync import api as sync_api
from portal.console import views as views_console
from portal.observability import metrics
from portal.pages import views
from portal.pages.urls_common import urlpatterns as common
from portal.pages.urls_deadletters import public_urlpatterns as dead_letter_pages
from tenants import api, seed_api

router = SimpleRouter()
router.register("tiers", api.TierViewSet, basename="tier")
router.register("tenants", api.TenantViewSet, basename="tenant")
router.register("quarantine", dead_letters_api.QuarantineViewSet, basename="quarantine")

urlpatterns = [
    *common,
    path("", views.home, name="home"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("console/tenants/<uuid:tenant_id>/", views_console.console_tenant, name="console-tenant"),
    path(
        "console/tenants/<uuid:tenant_id>/jobs/",
        views_console.console_tenant_jobs,
        name="console-tenant-jobs",
    ),
    path(
        "console/tenants/<uuid:tenant_id>/<slug:action>/",
        views_console.console_tenant_action,
        name="console-tenant-action",
    ),
    # One sign-in page for everyone (with django-axes and the role check): the admin's too.
    path("admin/login/", views.admin_login_redirect),
    path("admin/", admin.site.urls),
    *dead_letter_pages,
    path("api/v1/sync/", sync_api.PlatformSyncView.as_view(), name="sync"),
    path("api/v1/sync/resync/", sync_api.ResyncView.as_view(), name="sync-resync"),
    path("api/v1/sync/jobs/<uuid:job_id>/", sync_api.SyncJobView.as_view(), name="sync-job"),
    path("api/v1/", include(router.urls)),
    path("tenants", seed_api.SeedTenantsView.as_view(), name="seed-tenants"),
    path("onboarding", seed_api.SeedOnboardingView.as_view(), name="seed-onboarding"),
    path("delete", seed_api.SeedDeleteView.as_view(), name="seed-delete"),
    path("tenant-info", seed_api.SeedTenantInfoView.as_view(), name="seed-tenant-info"),
]

# Under /api/ the JSON error shape, elsewhere the usual pages (core/http.py).
handler400 = "core.http.bad_request"
handler404 = "core.http.page_not_found"
handler500 = "core.http.server_error"
