"""Test-only URLs: views that touch a mailing, a message and a client, to check the log context."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

logger = logging.getLogger("tests.ops.views")


def touch(request: HttpRequest, **kwargs) -> HttpResponse:
    logger.info("looked at it")
    return HttpResponse("ok")


urlpatterns = [
    path("mailings/<int:pk>/", touch, name="mailing-detail"),
    path("messages/<int:pk>/", touch, name="message-detail"),
    path("clients/<int:client_id>/messages/", touch, name="client-messages"),
    path("", include("mailer.urls")),
]
