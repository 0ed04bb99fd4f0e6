"""The API schema's conventions (DEFAULT_SCHEMA_CLASS): kept apart from the schema views,
which DRF's settings import this class before."""

from drf_spectacular.openapi import AutoSchema as DefaultAutoSchema

from core.api import ERROR

# Paths outside /api/ are the seed-compatible control-plane endpoints (tenants/seed_api.py).
SEED_TAG = "seed"
# Every operation may answer these (authentication, role, unknown object, throttling), in the
# error shape of core/errors.py; 400 and 409 too when it takes a body.
COMMON_ERRORS = ("401", "403", "404", "429")
BODY_ERRORS = ("400", "409")


class AutoSchema(DefaultAutoSchema):
    """One tag per resource (the path's first part after /api/v1/), the seed endpoints in
    their own group, and the error responses of every operation in the schema."""

    def get_tags(self):
        path = self.path
        if not path.startswith("/api/"):
            return [SEED_TAG]
        parts = [p for p in path.split("/") if p and not p.startswith("{")]
        # /api/v1/<resource>/...
        return [parts[2]] if len(parts) > 2 else super().get_tags()

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction=direction)
        codes = list(COMMON_ERRORS)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += BODY_ERRORS
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ERROR, code, direction=direction)
        return responses
