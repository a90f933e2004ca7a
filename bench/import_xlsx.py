"""Benchmark: checking an .xlsx client file of N rows (default 1,000,000), the worst case for the
reader: every phone a shared string of its own (openpyxl keeps the shared strings in memory).

    SECRET_KEY=x PYTHONPATH=. DATABASE_URL=sqlite:////tmp/xm.sqlite3 python bench/import_xlsx.py [N]

Writes /tmp/big.xlsx once (XlsxWriter, shared strings), stores it as an upload would, runs the
check (run_import) in this process and prints its time and this process's peak RSS. Use a
throw-away database: it migrates the one DATABASE_URL names.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer.settings")
django.setup()

import xlsxwriter
from django.core.management import call_command

from mailer.importing import run_import, start_import
from mailer.models import ClientImport

PATH = "/tmp/big.xlsx"


def main(n: int) -> None:
    call_command("migrate", verbosity=0)
    if not os.path.exists(PATH):
        workbook = xlsxwriter.Workbook(PATH)  # shared strings, not constant_memory's inline ones
        sheet = workbook.add_worksheet()
        sheet.write_row(0, 0, ["Телефон", "Метка", "Часовой пояс"])
        for i in range(n):
            sheet.write_row(i + 1, 0, [f"7916{i:07d}", f"метка{i % 50}", "Europe/Moscow"])
        workbook.close()
    print(f"file {os.path.getsize(PATH) / 2**20:.1f} MB")
    with open(PATH, "rb") as file:
        imp = start_import(file, all_or_nothing=False, write=False, enqueue=False)
    start = time.perf_counter()
    state = run_import(imp.pk)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    imp = ClientImport.objects.get(pk=imp.pk)
    print(f"{state}: {seconds:.1f} s, peak RSS {rss:.0f} MB; {imp.created:,} new, {imp.error_count} errors")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
