"""Benchmark: checking an .xlsx client file of N rows (default 1,000,000), the worst case for the
reader: every phone a shared string of its own (openpyxl keeps the shared strings in memory).

    SECRET_KEY=x PYTHONPATH=. DATABASE_URL=sqlite:////tmp/xm.sqlite3 python bench/import_xlsx.py [N]

Writes /tmp/big.xlsx once (XlsxWriter, shared strings), stores it as an upload would, runs the
check (run_import) in this process and prints its time and this process's peak RSS. Use a
throw-away database: it migrates the one DATABASE_URL names.
"""

import os
import resource
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
import django

django.setup()
from django.core.management import call_command

call_command("migrate", verbosity=0)
import xlsxwriter

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
path = "/tmp/big.xlsx"
if not os.path.exists(path):
    wb = xlsxwriter.Workbook(path)  # shared strings: the worst case for the reader
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["Телефон", "Метка", "Часовой пояс"])
    for i in range(n):
        ws.write_row(i + 1, 0, [f"7916{i:07d}", f"метка{i % 50}", "Europe/Moscow"])
    wb.close()
print("file MB", os.path.getsize(path) / 2**20)
from mailer.importing import run_import, start_import

with open(path, "rb") as f:
    imp = start_import(f, all_or_nothing=False, write=False, enqueue=False)
t = time.perf_counter()
print(
    run_import(imp.pk),
    time.perf_counter() - t,
    "s; peak RSS MB",
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
)
from mailer.models import ClientImport

imp = ClientImport.objects.get(pk=imp.pk)
print(imp.state, imp.created, imp.error_count, imp.errors[:2])
