from django.urls import path
from drf_spectacular.views import SpectacularSwaggerSplitView

from portal.api import auth_views
from portal.api.schema import HostSchemaView
from portal.observability import health
from portal.pages import views

# Served on every host: the public one and each tenant's.
urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("api/v1/auth/token/", auth_views.TokenObtainView.as_view(), name="token_obtain"),
    path(
        "api/v1/auth/token/refresh/",
        auth_views.TokenRefreshHostView.as_view(),
        name="token_refresh",
    ),
    path("api/v1/auth/sign-out/", auth_views.SignOutView.as_view(), name="sign_out"),
    path("api/schema/", HostSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]
