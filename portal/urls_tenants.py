"""URLs of a tenant host (<slug>.<base domain>): self-service pages and the tenant API."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from portal import views
from portal.urls_common import urlpatterns as common
from tenants import api_members

router = SimpleRouter()
router.register("members", api_members.MemberViewSet, basename="member")

urlpatterns = [
    *common,
    path("", views.home, name="home"),
    path("members/invite/", views.member_invite, name="member-invite"),
    path("members/<int:membership_id>/", views.member_change, name="member-change"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("api/v1/me/", api_members.MeView.as_view(), name="me"),
    path("api/v1/", include(router.urls)),
]
