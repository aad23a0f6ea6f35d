"""Render the stability report page and its PDF to PNG images, to look at them.

    VAR_DIR=/tmp/var_demo .venv/bin/python scripts/render_report.py --period 2026-10 --language zh-hans

Reads the configured database (load the demo first: `manage.py load_demo`) as the first manager,
through Django's test client, so no server needs to run. Writes into --out (default var/report-render):
page-<language>-1280.png and page-<language>-390.png (Chromium via Playwright, full page, the app's own
CSS) and report-<language>.pdf with pdf-<language>-<n>.png per page (pdftoppm, Debian's
poppler-utils). Needs /usr/bin/chromium (or CHROMIUM) and pdftoppm.
"""

import argparse
import mimetypes
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", default="", help="e.g. 2026-10; default: last month")
    parser.add_argument("--team", default="")
    parser.add_argument("--system", default="")
    parser.add_argument("--language", default="en", choices=["en", "zh-hans"])
    parser.add_argument("--user", default="", help="a manager's username; default: the first manager")
    parser.add_argument("--out", default=str(BASE_DIR / "var" / "report-render"))
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils.http import urlencode

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    users = get_user_model().objects.filter(is_active=True)
    user = users.get(username=args.user) if args.user else users.filter(role="manager").order_by("pk").first()
    if user is None:
        parser.error("no manager to sign in as: load the demo (manage.py load_demo) or pass --user")
    client = Client(HTTP_ACCEPT_LANGUAGE=args.language)
    client.force_login(user)
    query = urlencode({k: v for k, v in {"period": args.period, "team": args.team, "system": args.system}.items() if v})

    page = client.get(f"/reports/?{query}")
    if page.status_code != 200:
        print(page.content.decode()[:2000], file=sys.stderr)
        raise SystemExit(f"/reports/ answered {page.status_code}")
    pdf = client.get(f"/reports/pdf/?{query}")
    if pdf.status_code != 200:
        raise SystemExit(f"/reports/pdf/ answered {pdf.status_code}: {pdf.content[:300]!r}")
    pdf_path = out / f"report-{args.language}.pdf"
    pdf_path.write_bytes(pdf.content)
    for old in out.glob(f"pdf-{args.language}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", "70", "-png", str(pdf_path), str(out / f"pdf-{args.language}")], check=True)
    print(pdf_path, *sorted(out.glob(f"pdf-{args.language}-*.png")), sep="\n")

    for width in (1280, 390):
        path = out / f"page-{args.language}-{width}.png"
        screenshot(page.content.decode(), path, width=width)
        print(path)
    return 0


def screenshot(html: str, path: Path, *, width: int) -> None:
    """A full-page screenshot of the HTML, its /static/ files served from the app's static folders."""
    from django.contrib.staticfiles import finders
    from playwright.sync_api import sync_playwright

    def static(route):
        name = route.request.url.split("/static/", 1)[1].split("?")[0]
        found = finders.find(name)
        if not found:
            return route.fulfill(status=404, body="")
        route.fulfill(body=Path(found).read_bytes(), content_type=mimetypes.guess_type(found)[0] or "text/plain")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"]
        )
        tab = browser.new_page(viewport={"width": width, "height": 900})
        tab.route("**/static/**", static)
        tab.route("http://report.invalid/", lambda route: route.fulfill(body=html, content_type="text/html"))
        tab.goto("http://report.invalid/")
        tab.screenshot(path=str(path), full_page=True)
        browser.close()


if __name__ == "__main__":
    raise SystemExit(main())
