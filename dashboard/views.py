from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from mailer.models import Mailing, MailingState


@login_required
def home(request: HttpRequest) -> HttpResponse:
    running = Mailing.objects.filter(state=MailingState.RUNNING)[:20]
    return render(request, "dashboard/home.html", {"running": running})
