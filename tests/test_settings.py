"""Production mode is chosen by environment variables; check it in a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DEBUG, settings.STORAGES['staticfiles']['BACKEND'], settings.SESSION_COOKIE_SECURE)"
)


def run_settings(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_production_mode_requires_a_secret_key(tmp_path):
    result = run_settings(tmp_path, DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_mode_with_a_secret_key(tmp_path):
    result = run_settings(tmp_path, DEBUG="false", SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "whitenoise.storage.CompressedManifestStaticFilesStorage", "True"]


def test_debug_is_the_default_for_make_run(tmp_path):
    result = run_settings(tmp_path)
    assert result.stdout.split()[0] == "True", result.stderr
