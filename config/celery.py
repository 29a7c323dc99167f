"""The Celery app. Settings come from Django settings under the CELERY_ namespace."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# DjangoTask gives every task delay_on_commit(), so callers enqueue only after their
# transaction commits (https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html).
app = Celery("runproof", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
