"""The API schema's conventions (DEFAULT_SCHEMA_CLASS): kept apart from the schema views,
which DRF's settings import this class before."""

from drf_spectacular.openapi import AutoSchema as DefaultAutoSchema
from drf_spectacular.utils import OpenApiResponse

from core.api import ERROR, StrictInputMixin

# Paths outside /api/ are the seed-compatible control-plane endpoints (tenants/seed_api.py).
SEED_TAG = "seed"
# Every operation may answer these (authentication, role, unknown object, throttling), in the
# error shape of core/errors.py; 400 and 409 too when it takes a body, and 400 when it reads
# the query string (a filter or page number it refuses).
COMMON_ERRORS = ("401", "403", "404", "429")
BODY_ERRORS = ("400", "409")
QUERY_ERRORS = ("400",)
# The web server (gunicorn's limit_request_line) refuses a request line above 4 KiB before
# Django sees it: no JSON body.
URI_TOO_LONG = OpenApiResponse(description="The request line is too long (web server).")


class AutoSchema(DefaultAutoSchema):
    """One tag per resource (the path's first part after /api/v1/), the seed endpoints in
    their own group, the error responses of every operation, and request bodies that say they
    take no field beyond those listed (`additionalProperties: false`, as the server refuses
    unknown fields)."""

    def get_tags(self):
        path = self.path
        if not path.startswith("/api/"):
            return [SEED_TAG]
        parts = [p for p in path.split("/") if p and not p.startswith("{")]
        # /api/v1/<resource>/...
        return [parts[2]] if len(parts) > 2 else super().get_tags()

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictInputMixin):
            schema["additionalProperties"] = False
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction=direction)
        codes = list(COMMON_ERRORS)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += BODY_ERRORS
        elif any(p.get("in") == "query" for p in self._get_parameters()):
            codes += QUERY_ERRORS
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ERROR, code, direction=direction)
        if "414" not in responses:
            responses["414"] = self._get_response_for_code(URI_TOO_LONG, "414", direction)
        return responses
