import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# What is loaded by now (Django, the URL conf, the apps) lives as long as the process: take it out
# of the collector's scans, so a full collection under load walks only the objects of requests.
gc.freeze()
