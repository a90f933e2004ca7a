#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    if sys.version_info < (3, 11):
        sys.exit(f"mailer needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
