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


DEPLOY_ENV = {
    "DEBUG": "false",
    # 50+ characters, many distinct: what check --deploy asks of a real key
    "SECRET_KEY": "k3J9-vQz_7pLwX2mRt8sYb4NcH6fGd1aE0uKoPiZyTqWnMxVjBl5",
    "ALLOWED_HOSTS": "stability.example.com",
}


def run_deploy_check(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(tmp_path), **env)
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)


def test_check_deploy_is_clean_with_hsts_and_the_https_redirect_from_the_environment(tmp_path):
    result = run_deploy_check(
        tmp_path,
        **DEPLOY_ENV,
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_is_clean_with_the_production_defaults(tmp_path):
    result = run_deploy_check(tmp_path, **DEPLOY_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_names_what_plain_http_gives_up(tmp_path):
    result = run_deploy_check(tmp_path, **DEPLOY_ENV, SECURE_COOKIES="false")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


def test_production_security_settings_follow_the_environment(tmp_path):
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER, s.SECURE_REDIRECT_EXEMPT)"
    )
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(tmp_path),
        **DEPLOY_ENV,
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_PRELOAD="false",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Scheme",
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True 600 True False ('HTTP_X_FORWARDED_SCHEME', 'https') ['^healthz$', '^readyz$']"
    )
