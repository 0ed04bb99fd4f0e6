"""Django's error views for the URL confs: the API's JSON error shape under /api/, the usual
HTML pages elsewhere. DRF's exception handler only sees errors raised inside API views; these
cover the rest (no route matched, a body Django refused before any view ran, a crash)."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults

from core.errors import error_body


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    if isinstance(exception, RequestDataTooBig):
        if _is_api(request):
            return JsonResponse(
                error_body("request_too_large", "The request body is too large."), status=413
            )
        response = defaults.bad_request(request, exception, template_name)
        response.status_code = 413
        return response
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception, template_name)


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", "Internal server error; it has been logged."), status=500
        )
    return defaults.server_error(request, template_name)
