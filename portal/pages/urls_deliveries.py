"""Tenant-host URLs about deliveries: dashboard chart data, consumer and delivery pages, and
the deliveries API (broker/deliveries/api.py). Included by urls_tenants.py before its router."""

from django.urls import path

from broker.deliveries import api
from portal.pages import deliveries as views

urlpatterns = [
    path("dashboard/data/", views.dashboard_data, name="dashboard-data"),
    path("consumers/<uuid:consumer_id>/", views.consumer_page, name="consumer-page"),
    path("consumers/<uuid:consumer_id>/enable/", views.consumer_enable, name="consumer-enable"),
    path(
        "consumers/<uuid:consumer_id>/test-event/",
        views.consumer_test_event,
        name="consumer-test-event-page",
    ),
    path(
        "consumers/<uuid:consumer_id>/held-keys/<uuid:subscription_id>/<str:action>/",
        views.held_key_action,
        name="consumer-held-key-action",
    ),
    path("deliveries/<str:delivery_id>/", views.delivery_page, name="delivery-page"),
    path(
        "deliveries/<str:delivery_id>/resend/", views.delivery_resend, name="delivery-resend-page"
    ),
    path("api/v1/deliveries/", api.DeliveryListView.as_view(), name="delivery-list"),
    path(
        "api/v1/deliveries/<str:delivery_id>/",
        api.DeliveryDetailView.as_view(),
        name="delivery-detail",
    ),
    path(
        "api/v1/deliveries/<str:delivery_id>/resend/",
        api.DeliveryResendView.as_view(),
        name="delivery-resend",
    ),
    path(
        "api/v1/consumers/<str:pk>/test-event/",
        api.ConsumerTestEventView.as_view(),
        name="consumer-test-event",
    ),
]
