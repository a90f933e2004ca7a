"""The real URLs plus two stand-ins, to show that a view is exempt from the login by its mark, not
by where it lives: a plain view under /api/ needs a login, a marked one anywhere does not."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import path

from mailer.urls import urlpatterns as real_urlpatterns


def plain(request):
    return HttpResponse("ok")


@login_not_required
def marked(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/plain/", plain),
    path("marked/", marked),
    *real_urlpatterns,
]
