"""The functions' zip holds the handlers and what they import, and no Django: they import in a
Python where `import django` fails."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a bare Python (-S: no site-packages) with only the unpacked zip on sys.path, as in
# Lambda, and a finder that refuses django even if some path held it.
PROBE = """
import importlib.abc, sys
class NoDjango(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("django", "rest_framework", "django_tenants", "celery"):
            raise ImportError(f"{name} is not in the functions' package")
sys.meta_path.insert(0, NoDjango())
sys.path.insert(0, sys.argv[1])
try:
    import django
except ImportError:
    pass
else:
    raise SystemExit("django importable")
import broker.functions.ingress as ingress, broker.functions.egress as egress
assert callable(ingress.handler) and callable(ingress.sqs_source_handler)
assert callable(egress.handler) and callable(egress.flush_records)
assert all(m.__file__.startswith(sys.argv[1]) for m in (ingress, egress))
print("ok", len([m for m in sys.modules if m.startswith("broker.functions")]))
"""


def test_the_built_zip_imports_the_handlers_where_django_cannot_be_imported(tmp_path):
    out = tmp_path / "functions.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package_functions.py"), "--output", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert "broker/__init__.py" in names and "broker/functions/ingress/__init__.py" in names
        assert not any(n.split("/")[0] in ("django", "portal", "tenants", "core") for n in names)
        outside = {n for n in names if n.startswith("broker/")} - {
            n for n in names if n.startswith("broker/functions/")
        }
        assert outside == {"broker/__init__.py"}
        zf.extractall(tmp_path / "unpacked")  # Lambda unpacks the zip into /var/task
    result = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(tmp_path / "unpacked")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
