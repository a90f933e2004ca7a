import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
django_application = get_wsgi_application()

from mailer import receipts  # noqa: E402 (Django is set up by now)
from mailer.public import clicks_first  # noqa: E402

application = clicks_first(receipts.first(django_application))
