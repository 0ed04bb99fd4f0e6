"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

import logging

from axes.exceptions import AxesBackendPermissionDenied
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A domain rule refused the request. Maps to 400 unless a status is given."""

    def __init__(self, message: str, *, code: str = "invalid", fields=None, status_code=400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}
        self.status_code = status_code


def reject_unknown_fields(data, allowed) -> None:
    """A 400 naming each key of `data` that is not in `allowed` ("Unknown field.")."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApplicationError("Invalid input.", fields={k: ["Unknown field."] for k in unknown})


def _fields_from(detail) -> dict:
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                out[key] = _fields_from(value)
            elif isinstance(value, list):
                out[key] = [_fields_from(v) if isinstance(v, dict) else str(v) for v in value]
            else:
                out[key] = [str(value)]
        return out
    return {}


def error_body(code: str, message: str, fields=None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        message = "; ".join(exc.messages) if not fields else "Invalid input."
        return Response(error_body("invalid", message, fields), status=400)
    if isinstance(exc, AxesBackendPermissionDenied):
        return Response(
            error_body("locked_out", "Too many failed sign-in attempts; try again later."),
            status=429,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            non_field = detail.get("non_field_errors")
            message = str(non_field[0]) if non_field else "Invalid input."
            body = error_body("invalid", message, _fields_from(detail))
        else:
            items = detail if isinstance(detail, list) else [detail]
            body = error_body("invalid", "; ".join(str(i) for i in items))
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        if isinstance(detail, dict):  # simplejwt puts {"detail", "code", "messages"} here
            message = str(detail.get("detail", "Error."))
            code = str(detail.get("code", getattr(exc, "default_code", "error")))
        else:
            message = str(detail)
            code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        body = error_body(code, message)
    response.data = body
    return response
