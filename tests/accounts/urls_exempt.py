"""The real URLs plus stand-ins for paths other apps own (API, docs, probes), to test the exemptions."""

from django.http import HttpResponse
from django.urls import path

from mailer.urls import urlpatterns as real_urlpatterns


def ok(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/mailings/", ok),
    path("docs/", ok),
    path("metrics", ok),
    path("healthz", ok),
    path("readyz", ok),
    path("metrics-private", ok),
    path("apiary/", ok),
    *real_urlpatterns,
]
