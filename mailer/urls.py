from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from social_django import views as social_views

from accounts import views as accounts_views
from dashboard import views as dashboard_views
from mailer import monitoring, public
from mailer.api import errors

handler400 = errors.bad_request
handler500 = errors.server_error


def docs_page(view_class):
    """Swagger UI (its init script served as a file: no inline script) and ReDoc behind login.
    Their bundles inject <style> elements and ReDoc runs a blob: worker, so their pages widen the
    policy for styles and workers; scripts stay this server's."""
    view = view_class.as_view(url_name="schema")
    return login_required(csp_update({"style-src": [UNSAFE_INLINE], "worker-src": [SELF, "blob:"]})(view))


sso_urls = [
    path("login/<str:backend>/", social_views.auth, name="begin"),
    path("complete/<str:backend>/", social_views.complete, name="complete"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", monitoring.metrics, name="metrics"),
    path("healthz", monitoring.healthz, name="healthz"),
    path("readyz", monitoring.readyz, name="readyz"),
    # Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says.
    path("favicon.ico", dashboard_views.favicon),
    # For the people mailings go to (mailer/public.py): a link of their own, leaving the mailings.
    re_path(r"^l/(?P<code>[^/]+)$", public.link, name="link"),
    re_path(r"^u/(?P<code>[^/]+)$", public.unsubscribe, name="unsubscribe"),
    path("accounts/", include("accounts.urls")),
    # The language switcher (a POST that sets the language cookie): on the login page too.
    path("i18n/setlang/", accounts_views.set_language, name="set_language"),
    # Auth0 single sign-on: the start is /sso/login/auth0/, the callback /sso/complete/auth0/.
    # Only these two of social-auth's routes: its IdP-initiated launch and its unlinking of an
    # account are not used here, and a route that is not there needs no rule.
    path("sso/", include((sso_urls, "social"))),
    path("api/v1/", include("mailer.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The docs pages are for a browser: without a session they redirect to the login page. DRF's
    # views opt out of the login middleware (they answer 401 themselves), hence login_required here.
    path("docs/", docs_page(SpectacularSwaggerSplitView), name="swagger-ui"),
    path("redoc/", docs_page(SpectacularRedocView), name="redoc"),
    path("", include("dashboard.urls")),
]
