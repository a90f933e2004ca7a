#!/usr/bin/env python3
"""Update the Russian catalogue from the code and compile it.

Run it after changing a user-visible string (GNU gettext needed: apt-get install gettext):
new strings appear untranslated in locale/ru/LC_MESSAGES/django.po; translate them there, run it
again, and commit both django.po and django.mo. tests/dashboard/test_i18n.py fails while a string
has no translation or the .mo is older than the .po.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not the product's own code: its tests, tools and the installed packages.
IGNORE = [".venv/*", "tests/*", "bench/*", "tools/*", "docs/*", "deploy/*", "staticfiles/*", "var/*"]

if __name__ == "__main__":
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
    os.environ.setdefault("SECRET_KEY", "only-to-read-the-code")
    import django
    from django.core.management import call_command

    django.setup()
    call_command(
        "makemessages",
        locale=["ru"],
        extensions=["html", "txt", "py"],
        add_location="file",
        no_obsolete=True,
        ignore_patterns=IGNORE,
        verbosity=0,
    )
    call_command("compilemessages", locale=["ru"], ignore_patterns=IGNORE, verbosity=0)
