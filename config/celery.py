import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Deliveries wait on other people's servers (a slow robot answers in seconds, a dead one after the HTTP
# timeout): they have a queue of their own, consumed by workers of their own, so the minute's reminder
# sweep and the other periodic tasks on the default queue never wait behind them (README, Deployment).
DELIVERY_QUEUE = "deliveries"
PERIODIC_QUEUE = "celery"  # Celery's default queue: beat's tasks

app = Celery("stability_tracker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {"stability.tasks.deliver_notifications": {"queue": DELIVERY_QUEUE}}
app.autodiscover_tasks()
