"""The README, docs/ and the code's comments say only what the tree holds.

Each check runs on the repository and on a small planted wrong claim, which it must catch.
"""

import re

import pytest
from django.conf import settings

from broker.services import event_types, producers, subscriptions
from core import api as core_api
from core import parsers
from tests.helpers import docs_truth
from tests.helpers.docs_truth import ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_stays_inside_the_repository_and_exists():
    for doc in docs_truth.documents():
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repo: {target}"
            assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


def test_the_design_a_reader_needs_is_in_the_repository():
    design = (ROOT / "docs" / "design.md").read_text()
    for part in ("Layers", "DynamoDB contract", "Flows", "Security", "Performance budgets"):
        assert part in design
    # The code cites the flows by number (docs/design.md, flow 5): all seven are there.
    for number, name in enumerate(
        ("Config change", "Onboarding", "Offboarding", "Ingress", "Egress", "DLQ ingest", "Replay"),
        start=1,
    ):
        assert re.search(rf"^{number}\. \*\*{name}", design, re.M), name


# --- paths and modules ------------------------------------------------------------------


def test_every_path_and_module_cited_in_the_docs_exists():
    wrong = {}
    for doc in docs_truth.documents():
        text = doc.read_text()
        found = docs_truth.missing_paths(text, doc.parent) + docs_truth.missing_modules(text)
        if found:
            wrong[doc.relative_to(ROOT).as_posix()] = found
    assert wrong == {}


def test_every_path_and_module_cited_in_a_comment_or_docstring_exists():
    wrong = {}
    for path in docs_truth.python_files():
        prose = docs_truth.comments_and_docstrings(path.read_text())
        found = docs_truth.missing_paths(prose, path.parent) + docs_truth.missing_modules(prose)
        if found:
            wrong[path.relative_to(ROOT).as_posix()] = found
    assert wrong == {}


def test_a_planted_missing_file_or_module_is_found():
    planted = (
        "The flows are in DESIGN.md; keys in portal.cache.tenant_key_function; idempotency in "
        "portal/idempotency.py. True ones: core/idempotency.py, broker.sync.tasks.relay_tick, "
        "tenants.Tenant, broker/deadletters/*.py, docs/sync.md."
    )
    assert docs_truth.missing_paths(planted) == ["DESIGN.md", "portal/idempotency.py"]
    assert docs_truth.missing_modules(planted) == ["portal.cache.tenant_key_function"]


def test_comments_and_docstrings_are_what_is_read_not_the_code():
    source = '"""See core/gone.py."""\nx = "core/also_gone.py"  # and broker/nope.py\n'
    prose = docs_truth.comments_and_docstrings(source)
    assert sorted(docs_truth.missing_paths(prose)) == ["broker/nope.py", "core/gone.py"]


# --- settings ---------------------------------------------------------------------------


def _env_example():
    return (ROOT / ".env.example").read_text()


def test_every_variable_in_env_example_is_read_and_every_setting_read_is_in_it():
    example = docs_truth.env_example_names(_env_example())
    read = docs_truth.settings_read() | docs_truth.variables_read_elsewhere()
    assert sorted(example - read) == [], "in .env.example, read by nothing"
    assert sorted(docs_truth.settings_read() - example) == [], (
        "read by settings, not in .env.example"
    )


def test_every_setting_the_docs_name_exists():
    wrong = {}
    for doc in [*docs_truth.documents(), ROOT / ".env.example"]:
        found = docs_truth.unknown_settings_in_docs(doc.read_text())
        if found:
            wrong[doc.name] = found
    assert wrong == {}


def test_a_planted_unknown_setting_is_found_both_ways():
    planted = "`API_KEY_ROTATION_GRACE_SECONDS` and `API_KEY_ROTATION_GRACE_HOURS`"
    assert docs_truth.unknown_settings_in_docs(planted) == ["API_KEY_ROTATION_GRACE_HOURS"]
    example = docs_truth.env_example_names("# DJANGO_DEBUG=1\nNOT_READ_ANYWHERE=1\n")
    read = docs_truth.settings_read() | docs_truth.variables_read_elsewhere()
    assert example - read == {"NOT_READ_ANYWHERE"}


# --- endpoints --------------------------------------------------------------------------


def _api_md():
    return (ROOT / "docs" / "api.md").read_text()


def test_every_endpoint_in_api_md_is_routed_and_every_api_route_is_in_it():
    documented = docs_truth.documented_endpoints(_api_md())
    assert sorted(documented - docs_truth.routed_paths(api_only=False)) == [], "not routed"
    assert sorted(docs_truth.routed_paths(api_only=True) - documented) == [], "undocumented"


def test_the_endpoint_forms_of_api_md_are_read_and_a_planted_one_is_found():
    planted = (
        "| `GET, POST /api/v1/producers/` | |\n"
        "| `POST /api/v1/tenants/{id}/suspend/`, `resume/`, `hibernate/` | |\n"
        "| `GET`/`POST /api/v1/tenants/{id}/members/` | |\n"
        "| `POST /delete {tenantName}` | |\n"
    )
    documented = docs_truth.documented_endpoints(planted)
    assert documented == {
        "/api/v1/producers/",
        "/api/v1/tenants/{}/suspend/",
        "/api/v1/tenants/{}/resume/",
        "/api/v1/tenants/{}/hibernate/",
        "/api/v1/tenants/{}/members/",
        "/delete",
    }
    assert documented - docs_truth.routed_paths(api_only=False) == {"/api/v1/tenants/{}/hibernate/"}


# --- limits -----------------------------------------------------------------------------

# What docs/api.md states → the constant the code enforces.
LIMITS = {
    r"schema at most (\d+) KiB": event_types.MAX_SCHEMA_BYTES // 1024,
    r"KiB and (\d+) levels": event_types.MAX_SCHEMA_DEPTH,
    r"subscription filter at most (\d+) KiB": subscriptions.MAX_FILTER_BYTES // 1024,
    r"(\d+) event type patterns per producer": producers.MAX_ALLOWED_EVENT_TYPES,
    r"(\d+) valid API keys per producer": producers.MAX_API_KEYS_PER_PRODUCER,
    r"([\d,]+) event types per tenant": event_types.MAX_EVENT_TYPES,
    r"(\d+)-character visible prefix": producers.API_KEY_PREFIX_LENGTH,
    r"`\?page_size=` up to (\d+)": core_api.Pagination.max_page_size,
    r"JSON nested deeper than (\d+) levels": parsers.MAX_JSON_DEPTH,
    r"the same key and body within (\d+) h": settings.IDEMPOTENCY_TTL_SECONDS // 3600,
}


def test_every_limit_in_api_md_is_the_one_the_code_enforces():
    assert docs_truth.wrong_limits(_api_md(), LIMITS) == []


def test_a_planted_wrong_or_missing_limit_is_found():
    planted = "a subscription filter at most 32 KiB, 100 event type patterns per producer"
    limits = {
        r"subscription filter at most (\d+) KiB": 16,
        r"(\d+) event type patterns per producer": 100,
        r"(\d+) valid API keys per producer": 10,
    }
    assert docs_truth.wrong_limits(planted, limits) == [
        (r"subscription filter at most (\d+) KiB", 32, 16),
        (r"(\d+) valid API keys per producer", None, 10),
    ]


@pytest.mark.parametrize("field", ["allowed_event_types"])
def test_the_api_caps_event_type_patterns_where_the_service_does(field):
    from broker.api.producers import ProducerWriteSerializer

    assert ProducerWriteSerializer().fields[field].max_length == producers.MAX_ALLOWED_EVENT_TYPES


# --- the map of the tree ----------------------------------------------------------------


def test_the_architecture_map_names_every_package_and_folder_and_only_those():
    missing, unmapped = docs_truth.map_mismatches((ROOT / "docs" / "architecture.md").read_text())
    assert missing == [], "named in docs/architecture.md, not in the tree"
    assert unmapped == [], "in the tree, not in docs/architecture.md's map"


def test_a_planted_map_is_checked_both_ways():
    planted = "## Map of the tree\n\n| folder | |\n|---|---|\n| `core/`, `nowhere/` | |\n"
    missing, unmapped = docs_truth.map_mismatches(planted)
    assert missing == ["nowhere"]
    assert "broker/services" in unmapped
