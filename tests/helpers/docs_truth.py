"""What the docs and comments say, checked against the tree (tests/test_docs.py runs these).

Each checker takes text and returns the claims it could not find true, so that a test can run
it on the repository (nothing may be returned) and on a planted wrong claim (it must be).
"""

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The folders a cited path may start with; var/ and /tmp paths are runtime, not the tree.
TREE_ROOTS = (
    "core",
    "tenants",
    "broker",
    "portal",
    "tests",
    "bench",
    "scripts",
    "deploy",
    "docs",
    "templates",
    "static",
    ".ci",
)
PACKAGES = ("core", "tenants", "broker", "portal")
_ROOTS = "|".join(re.escape(r) for r in TREE_ROOTS)
PATH = re.compile(r"(?<![\w./<{-])((?:" + _ROOTS + r")/[\w./*{}<>…-]*[\w*/…]|[\w-]+\.md)(?![\w/-])")
DOTTED = re.compile(r"(?<![\w./*-])((?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_]\w*)+)(?![\w(/-])")
# `tenants.md` is a file, `broker.test` an event type: not modules.
NOT_MODULES = re.compile(r"\.(?:md|py|yaml|yml|json|sh|txt|html|toml)$")
EVENT_TYPES = frozenset({"broker.test"})


def documents():
    """The README and every Markdown file of docs/ and bench/."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "bench").glob("*.md")),
    ]


def python_files():
    skip = {".venv", "var", "node_modules", "staticfiles", "migrations"}
    return [p for p in sorted(ROOT.rglob("*.py")) if not skip & set(p.relative_to(ROOT).parts)]


def comments_and_docstrings(source):
    """The comments and docstrings of a Python module: what a reader takes as prose."""
    parts = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            parts.append(token.string)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


# --- file paths -------------------------------------------------------------------------


def _path_exists(cited, base):
    cited = cited.rstrip("/").rstrip(".").replace("…", "*")
    if re.fullmatch(r"[\w.]+/\w", cited):  # a unit such as tenants/s, not a path
        return True
    if "{" in cited or "<" in cited:  # a pattern such as tests/<app>/…: its stem must exist
        cited = re.split(r"[{<]", cited)[0].rstrip("/") or "."
    for folder in (ROOT, base, ROOT / "docs"):
        if "*" in cited:
            if any(folder.glob(cited)):
                return True
        elif (folder / cited).exists():
            return True
    return False


def missing_paths(text, base=ROOT):
    """Paths in `text` (relative to the root, to `base` or to docs/) that name no file."""
    found = []
    for cited in PATH.findall(text):
        if cited.startswith("docs/img") and cited.endswith("/"):
            continue
        if not _path_exists(cited, base):
            found.append(cited)
    return found


# --- dotted module paths ----------------------------------------------------------------


def _module_file(parts):
    path = ROOT.joinpath(*parts)
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return None


def _defines(module_file, name):
    """Whether the module binds `name` at its top level (def, class, assignment, import)."""
    tree = ast.parse(module_file.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(target)):
                    return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


def dotted_exists(dotted):
    parts = dotted.split(".")
    for length in range(len(parts), 0, -1):
        module = _module_file(parts[:length])
        if module is None:
            continue
        rest = parts[length:]
        if not rest:
            return True
        if length == 1 and _module_file([parts[0], "models"]):  # an app label: tenants.Tenant
            if _defines(_module_file([parts[0], "models"]), rest[0]) and len(rest) == 1:
                return True
        if not _defines(module, rest[0]):
            return False
        # An attribute of a class or object: it must at least be named in that module.
        text = module.read_text()
        return all(re.search(rf"\b{re.escape(name)}\b", text) for name in rest[1:])
    return False


def missing_modules(text):
    """Dotted paths into our packages (`broker.sync.tasks.relay_tick`) that name nothing."""
    return [
        d
        for d in DOTTED.findall(text)
        if not NOT_MODULES.search(d) and d not in EVENT_TYPES and not dotted_exists(d)
    ]


# --- settings ---------------------------------------------------------------------------

ENV_READ = re.compile(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""")
ENV_EXAMPLE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=", re.M)
SHELL_VAR = re.compile(r"\$\{?([A-Z][A-Z0-9_]+)")
OS_ENVIRON = re.compile(
    r"""(?:environ(?:\.get|\.setdefault)?|getenv|_env\w*)\s*[(\[]\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# Read by boto3 itself (the default credential chain), not by our code.
READ_BY_LIBRARIES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})


def settings_read():
    """Environment variables portal/settings.py reads."""
    return set(ENV_READ.findall((ROOT / "portal" / "settings.py").read_text()))


def variables_read_elsewhere():
    """Environment variables read by the gunicorn settings, the portal's code and the scripts."""
    names = set(READ_BY_LIBRARIES)
    for path in python_files():
        if "tests" not in path.relative_to(ROOT).parts:
            names |= set(OS_ENVIRON.findall(path.read_text()))
    for path in sorted((ROOT / "scripts").glob("*.sh")):
        names |= set(SHELL_VAR.findall(path.read_text()))
    return names


def env_example_names(text):
    return set(ENV_EXAMPLE.findall(text))


SETTING_IN_DOC = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")


def _constants_defined():
    names = set()
    for path in python_files():
        names |= set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*[:=]", path.read_text(), re.M))
    return names


def unknown_settings_in_docs(text):
    """`UPPER_CASE` names in a doc that no setting, environment variable or constant defines."""
    known = settings_read() | variables_read_elsewhere() | _constants_defined()
    return [name for name in SETTING_IN_DOC.findall(text) if name not in known]


# --- endpoints --------------------------------------------------------------------------

METHODS = r"(?:GET|POST|PATCH|PUT|DELETE)"
# `GET, POST /api/v1/producers/`, `GET`/`POST /api/v1/x/`, `POST /onboarding {…}`, and
# the suffixes that follow one: `POST /api/v1/tenants/{id}/suspend/`, `resume/`, `offboard/`.
ENDPOINT_CELL = re.compile(
    rf"`{METHODS}(?:`?(?:,\s*|/`?){METHODS})*\s+(/[^\s`?(]*)[^`]*`((?:,\s*`[a-z-]+/`)*)"
)
SUFFIX = re.compile(r"`([a-z-]+/)`")
# `/api/schema/` on each host: a path named without a method.
API_PATH = re.compile(r"`(/api/[^\s`?]*/)`")


def documented_endpoints(text):
    """The paths docs/api.md gives with a method, ids written `{…}`."""
    paths = set()
    for path, suffixes in ENDPOINT_CELL.findall(text):
        paths.add(normalise(path))
        if suffixes:
            stem = path.rstrip("/").rsplit("/", 1)[0] + "/"
            paths |= {normalise(stem + s) for s in SUFFIX.findall(suffixes)}
    paths |= {normalise(path) for path in API_PATH.findall(text)}
    return paths


def normalise(path):
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("?"))


def routed_paths(*, api_only):
    """Every path of the public and tenant URL confs (`api_only`: those a DRF view serves),
    converters written `{}`."""
    from django.urls import URLPattern, URLResolver
    from rest_framework.views import APIView

    from portal import urls_public, urls_tenants

    def walk(patterns, prefix=""):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                view = getattr(entry.callback, "cls", None) or getattr(
                    entry.callback, "view_class", None
                )
                if not api_only or (isinstance(view, type) and issubclass(view, APIView)):
                    yield route

    paths = set()
    for conf in (urls_public, urls_tenants):
        for route in walk(conf.urlpatterns):
            if "(?P<format>" in route:
                continue
            route = re.sub(r"\(\?P<\w+>[^)]*\)", "{}", route)
            route = re.sub(r"<(?:\w+:)?\w+>", "{}", route)
            paths.add("/" + route.replace("^", "").replace("$", ""))
    return paths


# --- limits -----------------------------------------------------------------------------


def wrong_limits(text, limits):
    """(phrase, documented, enforced) for each limit whose number in `text` differs from the
    code's, or that `text` no longer states. `limits` maps a phrase with one `(\\d[\\d,]*)`
    group to the number the code enforces."""
    wrong = []
    for phrase, enforced in limits.items():
        match = re.search(phrase, re.sub(r"\s+", " ", text))
        documented = int(match.group(1).replace(",", "")) if match else None
        if documented != enforced:
            wrong.append((phrase, documented, enforced))
    return wrong


# --- the map of the tree ----------------------------------------------------------------

MAP_ROW = re.compile(r"^\|((?:\s*`[^`]+/`,?)+)\s*\|", re.M)


def map_folders(text):
    """The folders the first column of docs/architecture.md's map names."""
    section = text.split("## Map of the tree", 1)[1].split("\n## ", 1)[0]
    return {
        f.rstrip("/")
        for cells in MAP_ROW.findall(section)
        for f in re.findall(r"`([^`]+/)`", cells)
    }


def tree_folders():
    """Every package of the four apps (management commands count with management/) and every
    top-level folder git tracks."""
    folders = set()
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            folder = init.parent.relative_to(ROOT)
            if "migrations" in folder.parts or folder.name == "commands":
                continue
            folders.add(folder.as_posix())
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    folders |= {path.split("/", 1)[0] for path in tracked if "/" in path}
    return folders


def map_mismatches(text):
    """(named but missing, present but not named)."""
    named = map_folders(text)
    missing = sorted(f for f in named if not (ROOT / f).is_dir())
    unmapped = sorted(tree_folders() - named)
    return missing, unmapped
