"""Benchmark: what the worst client files up to the size limit cost the web process and the worker
(issue 21): peak RSS and time of each, in a fresh process each.

    python bench/import_memory.py [--before TREE] [--runs N] [--shapes NAME,...] [--write]

Writes each shape as a file of just under MAILER_IMPORT_MAX_MB, then, for this tree and (with
--before) another checkout of the code (e.g. `git worktree add /tmp/mailer-before 1904b1e`), runs
each shape in fresh processes:
- web: the dashboard's upload (POST /clients/import/) through Django's own request handling, the
  body read from a file as gunicorn hands it over, then, if the file was taken, the import's page
  (its preview of the first rows);
- worker: the file stored as it is, with no check at all (as one kept before the caps), and the
  import task run on it: the check only ("Check" on the page), or with --write the whole import.
Each process reports its peak RSS (ru_maxrss, from wait4) and is capped at 4 GB of address space.
Each tree gets its own throw-away SQLite database (in a temporary folder), migrated by its own code.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 2**20
CAP = 4 * 2**30  # address space of each measured process
TIMEOUT = 900  # seconds for one process

SETUP = """
import django
django.setup()
from django.contrib.auth import get_user_model
from mailer.models import Client, ClientImport
get_user_model().objects.filter(username="bench").exists() or get_user_model().objects.create_superuser("bench", "", "x")
ClientImport.objects.all().delete()
Client.objects.all()._raw_delete(Client.objects.db)
"""

WEB = """
import json, re, resource, sys, time
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.client import ClientHandler
# As the tests do: no collected static files here, and the pages only name them.
settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
body, boundary = sys.argv[1], sys.argv[2]  # and the body's length
browser = Client()
browser.force_login(get_user_model().objects.get(username="bench"))
start = time.perf_counter()
with open(body, "rb") as stream:
    response = ClientHandler(enforce_csrf_checks=False)({
        "REQUEST_METHOD": "POST", "PATH_INFO": "/clients/import/", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "HTTP_HOST": "localhost", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": stream, "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}", "CONTENT_LENGTH": sys.argv[3],
        "HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}",
    })
result = {"upload": response.status_code}
if response.status_code == 302:
    page = browser.get(response["Location"], HTTP_HOST="localhost")
    result["page"] = page.status_code
else:
    refusal = re.search(r'id="error_1_id_file"><strong>([^<]+)', response.content.decode())
    result["refused"] = refusal and refusal.group(1).strip()
result["seconds"] = time.perf_counter() - start
print(json.dumps(result))
"""

WORKER = """
import json, sys, time
import django
django.setup()
from django.db import transaction
from mailer import importing
from mailer.models import ClientImport, ImportChunk
path, write = sys.argv[1], sys.argv[2] == "1"
with transaction.atomic(), open(path, "rb") as stream:
    imp = ClientImport.objects.create(filename="bench.csv", write=write)
    for seq, piece in enumerate(iter(lambda: stream.read(importing.PIECE_BYTES), b"")):
        ImportChunk.objects.create(client_import=imp, seq=seq, data=piece)
        imp.size += len(piece)
    imp.save()
start = time.perf_counter()
state = importing.run_import(imp.pk)
imp.refresh_from_db()
print(json.dumps({"state": state, "seconds": time.perf_counter() - start, "errors": imp.error_count,
                  "first_error": imp.errors[0][2][:80] if imp.errors else "", "rows": imp.rows_to_write}))
"""


def write_shape(name: str, path: Path, size: int) -> None:
    """The file, written as it is generated: `size` bytes at most."""
    with open(path, "wb") as out:

        def fill(head: bytes, line, tail: bytes = b"") -> None:
            out.write(head)
            written, i = len(head) + len(tail), 0
            while True:
                chunk = b"".join(line(i + k) for k in range(10_000))
                if written + len(chunk) > size:
                    break
                out.write(chunk)
                written, i = written + len(chunk), i + 10_000
            while written + len(one := line(i)) <= size:
                out.write(one)
                written, i = written + len(one), i + 1
            out.write(tail)

        if name == "wide header":  # the file, six times over: millions of columns
            fill(b"phone", lambda i: b",ab", b"\n")
        elif name == "one long line":  # a tag of 50 MB
            fill(b"phone,tag\n79000000000,", lambda i: b"x" * 1000, b"\n")
        elif name == "short lines":  # bare phones, all different: the most rows a file can hold
            fill(b"phone\n", lambda i: b"79%09d\n" % i)
        elif name == "blank lines":  # the most lines a file can hold
            fill(b"phone\n", lambda i: b"\n" * 1000)
        elif name == "quoted line breaks":  # csv would read all of it as one row of millions of values
            fill(b'phone,tag\n79000000000,"', lambda i: b'\n","' * 250, b'"\n')
        elif name == "valid":  # a plain large file of good rows
            fill(b"phone,tag,timezone\n", lambda i: b"79%09d,tag%d,Europe/Moscow\n" % (i, i % 7))
        else:
            raise SystemExit(f"unknown shape {name!r}")


SHAPES = ["wide header", "one long line", "short lines", "blank lines", "quoted line breaks", "valid"]


def multipart(csv_path: Path, body: Path, boundary: str) -> None:
    with open(body, "wb") as out, open(csv_path, "rb") as data:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="import"\r\n\r\n1\r\n'.encode())
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clients.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
        )
        while piece := data.read(MB):
            out.write(piece)
        out.write(f"\r\n--{boundary}--\r\n".encode())


def child(tree: Path, env: dict, script: str, *args: str) -> dict:
    """Runs `script` in a fresh interpreter in `tree`, in a process group of its own, capped at CAP
    bytes of address space; its output's last line, with its peak RSS."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=cap,
        )
        deadline = time.monotonic() + TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = out.read().strip().splitlines()
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            last = (err.read().strip().splitlines() or ["killed: timeout"])[-1]
            result = {"crashed": last[:100]}
    return result | {"rss_mb": usage.ru_maxrss / 1024}


def prepare(tree: Path, folder: Path, label: str) -> dict:
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "mailer.settings",
        "SECRET_KEY": "bench",
        "DATABASE_URL": f"sqlite:///{folder / f'{label}.sqlite3'}",
        "PYTHONPATH": str(tree),
    }
    env.pop("DEBUG", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=tree, env=env, check=True, capture_output=True
    )
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--write", action="store_true", help="the worker checks and writes (else checks)")
    args = parser.parse_args()
    size = int(os.environ.get("MAILER_IMPORT_MAX_MB") or 50) * MB - 1024
    trees = {"after": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    shapes = args.shapes.split(",")
    results: dict[tuple[str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="import-memory-") as tmp:
        folder = Path(tmp)
        envs = {label: prepare(tree, folder, label) for label, tree in trees.items()}
        for shape in shapes:
            csv_path, body = folder / "clients.csv", folder / "body"
            write_shape(shape, csv_path, size)
            boundary = "bench-boundary-7f3a9c"
            multipart(csv_path, body, boundary)
            print(f"{shape}: {csv_path.stat().st_size / MB:.1f} MB", flush=True)
            for run in range(args.runs):
                for label, tree in trees.items():
                    for side, script, extra in (
                        ("web", WEB, [str(body), boundary, str(body.stat().st_size)]),
                        ("worker", WORKER, [str(csv_path), "1" if args.write else "0"]),
                    ):
                        child(tree, envs[label], SETUP)
                        result = child(tree, envs[label], script, *extra)
                        results.setdefault((shape, label, side), []).append(result)
                        shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in result.items()}
                        print(
                            f"  run {run + 1}, {label}, {side}: {json.dumps(shown, ensure_ascii=False)}",
                            flush=True,
                        )
    print("\nshape | side | " + " | ".join(f"{label}: peak RSS min/median/max MB" for label in trees))
    for shape in shapes:
        for side in ("web", "worker"):
            cells = []
            for label in trees:
                rss = [r["rss_mb"] for r in results[(shape, label, side)]]
                cells.append(f"{min(rss):.0f} / {statistics.median(rss):.0f} / {max(rss):.0f}")
            print(f"{shape} | {side} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
