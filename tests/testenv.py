"""Loaded with `-p` (see pytest.ini), before Django reads its settings: test-only defaults."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("MAILER_PROVIDER_TOKEN", "test-provider-token")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("LANGUAGE_CODE", "en")  # tests assert English; Russian ones ask for it
os.environ.setdefault(
    "MAILER_QUIET_HOURS", ""
)  # tests run at any hour; quiet hours are tested on a set clock
# Clicks go to the database at once; the spool (SQLite's default) is tested with a directory of its own.
os.environ.setdefault("MAILER_CLICK_SPOOL", "")
# Likewise receipts: applied at once, unless a test names a spool.
os.environ.setdefault("MAILER_RECEIPT_SPOOL", "")
