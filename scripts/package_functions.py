"""Builds the data plane's Lambda zip, without Django: `var/dist/functions.zip`.

    .venv/bin/python scripts/package_functions.py [--output PATH]

Holds `broker/__init__.py`, `broker/functions/**` and the installed distributions the functions
import (ROOTS and their requirements, from this virtualenv: the versions `requirements.txt`
pins), nothing else. The deploy template (deploy/template.yaml) points its functions at it.
cryptography and rpds-py carry compiled code: build on Linux x86_64 with CPython 3.11, the
runtime and architecture the template declares (or in the project's Docker image).

The zip is reproducible: files sorted, fixed timestamps, no bytecode.
"""

import argparse
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "var" / "dist" / "functions.zip"
# What broker/functions imports outside the standard library.
ROOTS = (
    "boto3",
    "aws-lambda-powertools",
    "cryptography",
    "jsonschema",
    "standardwebhooks",
    "urllib3",
)
# Never in the zip, whatever declares them.
EXCLUDED = {"django", "djangorestframework", "django-tenants", "celery", "psycopg"}
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def distributions(roots=ROOTS) -> dict[str, metadata.Distribution]:
    """The distributions of roots and of their (non-extra) requirements, by normalised name."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = _key(name)
        if key in found or key in EXCLUDED:
            continue
        dist = metadata.distribution(name)
        found[key] = dist
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(requirement.name)
    return found


def _skip(path: str) -> bool:
    parts = path.split("/")
    return (
        path.startswith("..")
        or "__pycache__" in parts
        or path.endswith((".pyc", ".pyo"))
        or parts[0] in ("bin", "tests")
    )


def files() -> dict[str, Path]:
    """Archive name → source file."""
    out: dict[str, Path] = {"broker/__init__.py": ROOT / "broker" / "__init__.py"}
    for path in sorted((ROOT / "broker" / "functions").rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and not _skip(rel):
            out[rel] = path
    for dist in distributions().values():
        base = Path(dist.locate_file(""))
        for entry in dist.files or []:
            rel = entry.as_posix()
            source = base / rel
            if not _skip(rel) and source.is_file():
                out[rel] = source
    return out


def build(output: Path = DEFAULT_OUTPUT) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, source in sorted(files().items()):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if source.stat().st_mode & 0o111 else 0o644) << 16
            zf.writestr(info, source.read_bytes())
    tmp.replace(output)
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    path = build(args.output)
    with zipfile.ZipFile(path) as zf:
        count = len(zf.namelist())
    print(f"{path} ({count} files, {path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
