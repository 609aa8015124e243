"""`riskdesk request ...`: the partner commands, built on riskdesk.client (never on the services).

    riskdesk request file --type mo_investigation --title "Coupon abuse ring" --tag coupons
    riskdesk request list --status new --q "gift card" --sort due
    riskdesk request show 42
    riskdesk request comment 42 "More evidence in JIRA-12"
    riskdesk request confirm 42
    riskdesk request reopen 42 --reason "Still happening in DE"
    riskdesk request import requests.csv

The key comes from `--key`, else `RISKDESK_API_KEY`, else the file `.riskdesk/api.key` (in
`RISKDESK_DATA_DIR` when set, else the current directory, else the home directory); the gateway
URL from `--url`, else `RISKDESK_URL`, else the `gateway_url` of a local `riskdesk up`
(`.riskdesk/stack.json`), else http://127.0.0.1:8000. Exit codes: 0 done, 1 the API refused
(the problem is printed) or some imported rows failed, 2 usage.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from riskdesk.client import Request, RiskdeskClient, RiskdeskError

DEFAULT_URL = "http://127.0.0.1:8000"
KEY_FILE = "api.key"
REQUEST_TYPES = (
    "mo_investigation",
    "deep_dive",
    "data_request",
    "rule_change",
    "systemic_gap_report",
    "other",
)
PRIORITIES = ("P0", "P1", "P2", "P3")
SORTS = ("created_at", "-created_at", "updated_at", "-updated_at", "priority", "due")
# Columns `request import` understands; `tags` and `external_refs` are `;`-separated.
IMPORT_COLUMNS = (
    "request_type",
    "title",
    "description",
    "priority",
    "marketplace",
    "tags",
    "external_refs",
    "team",
    "due_at",
    "impact_accounts_affected",
    "impact_money_at_risk_per_week",
    "impact_currency",
)
BAR_WIDTH = 30


def add_request_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `request` command group to the `riskdesk` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="gateway URL (default: RISKDESK_URL, stack.json, :8000)")
    common.add_argument("--key", help="API key (default: RISKDESK_API_KEY or .riskdesk/api.key)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP call")

    group = commands.add_parser(
        "request",
        help="file and follow requests through the gateway (partner commands)",
        description="File and follow requests through the gateway with your API key.",
    )
    actions = group.add_subparsers(dest="request_command", required=True, metavar="ACTION")

    file = actions.add_parser("file", parents=[common], help="file a request")
    file.add_argument("--type", dest="request_type", required=True, choices=REQUEST_TYPES)
    file.add_argument("--title", required=True)
    text = file.add_mutually_exclusive_group()
    text.add_argument("--description", default=None, help="markdown")
    text.add_argument("--description-file", type=Path, help="read the description from a file")
    file.add_argument("--priority", choices=PRIORITIES)
    file.add_argument("--marketplace")
    file.add_argument("--tag", dest="tags", action="append", help="repeatable")
    file.add_argument("--ref", dest="external_refs", action="append", help="repeatable")
    file.add_argument("--team", help="staff only: the team filed for")
    file.add_argument("--due-at", help="ISO-8601 with a zone")
    file.add_argument("--idempotency-key", help="a retry with the same key files nothing new")

    listing = actions.add_parser("list", parents=[common], help="list requests")
    listing.add_argument("--status", action="append", help="repeatable")
    listing.add_argument("--priority", action="append", choices=PRIORITIES, help="repeatable")
    listing.add_argument("--type", dest="request_type", choices=REQUEST_TYPES)
    listing.add_argument("--team", help="staff only")
    listing.add_argument("--tag")
    listing.add_argument("--assignee")
    listing.add_argument("--q", help='full text: words, "phrases", or, -exclude')
    listing.add_argument("--older-than", help="days (7) or ISO-8601 (P2W)")
    listing.add_argument("--updated-after", help="ISO-8601 with a zone")
    listing.add_argument("--updated-before", help="ISO-8601 with a zone")
    listing.add_argument("--breached", choices=("true", "false"))
    listing.add_argument("--sort", choices=SORTS)
    listing.add_argument("--limit", type=int, default=50, help="rows per page")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.add_argument("--cursor", help="continue from a previous page's cursor")
    listing.add_argument("--csv", type=Path, help="write the CSV export of the filter here")

    show = actions.add_parser("show", parents=[common], help="show one request")
    show.add_argument("request_id", type=int, metavar="ID")
    show.add_argument("--similar", action="store_true", help="also list similar requests")

    comment = actions.add_parser("comment", parents=[common], help="comment on a request")
    comment.add_argument("request_id", type=int, metavar="ID")
    comment.add_argument("body", nargs="?", help="markdown (or --body-file, or stdin with -)")
    comment.add_argument("--body-file", type=Path)
    comment.add_argument(
        "--internal", action="store_true", help="staff only: not shown to the partner"
    )

    confirm = actions.add_parser(
        "confirm", parents=[common], help="confirm a resolved request (closes it)"
    )
    confirm.add_argument("request_id", type=int, metavar="ID")

    reopen = actions.add_parser("reopen", parents=[common], help="reopen a resolved request")
    reopen.add_argument("request_id", type=int, metavar="ID")
    reopen.add_argument("--reason", required=True)

    importing = actions.add_parser(
        "import",
        parents=[common],
        help="file every row of a CSV (idempotent: re-running files nothing twice)",
        description="File one request per row. Columns: " + ", ".join(IMPORT_COLUMNS) + " "
        "(request_type and title required; tags and external_refs `;`-separated). Each row "
        "carries an Idempotency-Key derived from the file's content and the row number, so "
        "running the same file again files nothing twice.",
    )
    importing.add_argument("file", type=Path, metavar="FILE.csv")


# --- configuration -------------------------------------------------------------------------------


def _data_dirs() -> list[Path]:
    configured = os.environ.get("RISKDESK_DATA_DIR")
    if configured:
        return [Path(configured)]
    return [Path(".riskdesk"), Path.home() / ".riskdesk"]


def resolve_key(explicit: str | None) -> str | None:
    """The API key: `--key`, RISKDESK_API_KEY, or the first `.riskdesk/api.key` found."""
    if explicit:
        return explicit.strip()
    from_env = os.environ.get("RISKDESK_API_KEY")
    if from_env:
        return from_env.strip()
    for directory in _data_dirs():
        path = directory / KEY_FILE
        if path.is_file():
            return path.read_text().strip() or None
    return None


def resolve_url(explicit: str | None) -> str:
    """The gateway URL: `--url`, RISKDESK_URL, a local stack's stack.json, or :8000."""
    if explicit:
        return explicit
    from_env = os.environ.get("RISKDESK_URL")
    if from_env:
        return from_env
    for directory in _data_dirs():
        path = directory / "stack.json"
        if path.is_file():
            try:
                url = json.loads(path.read_text()).get("gateway_url")
            except (ValueError, AttributeError):
                continue
            if isinstance(url, str) and url:
                return url
    return DEFAULT_URL


# --- commands ------------------------------------------------------------------------------------


@dataclass
class _Io:
    out: TextIO
    err: TextIO


def run_request_command(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run one `riskdesk request ...` command; returns the exit code."""
    io_ = _Io(out or sys.stdout, err or sys.stderr)
    key = resolve_key(args.key)
    if not key:
        print(
            "riskdesk: error: no API key; pass --key, set RISKDESK_API_KEY, or write it to "
            ".riskdesk/api.key",
            file=io_.err,
        )
        return 2
    handlers: dict[str, Callable[[RiskdeskClient, argparse.Namespace, _Io], int]] = {
        "file": _file,
        "list": _list,
        "show": _show,
        "comment": _comment,
        "confirm": _confirm,
        "reopen": _reopen,
        "import": _import,
    }
    try:
        with RiskdeskClient(resolve_url(args.url), api_key=key, timeout=args.timeout) as client:
            return handlers[args.request_command](client, args, io_)
    except RiskdeskError as error:
        print(f"riskdesk: error: {error.message}", file=io_.err)
        return 1
    except OSError as error:
        print(f"riskdesk: error: {error}", file=io_.err)
        return 1


def _print_request(request: Request, io_: _Io, *, as_json: bool) -> None:
    if as_json:
        print(request.model_dump_json(indent=2), file=io_.out)
        return
    lines = [
        f"#{request.id} [{request.status}] {request.priority} {request.title}",
        f"  type {request.request_type}, team {request.team}, requested by {request.requested_by}",
        f"  filed {request.created_at:%Y-%m-%d %H:%M} UTC, updated "
        f"{request.updated_at:%Y-%m-%d %H:%M} UTC, version {request.version}",
    ]
    if request.assignee:
        lines.append(f"  assignee {request.assignee}")
    if request.resolution:
        lines.append(f"  resolution {request.resolution}")
    if request.duplicate_of:
        lines.append(f"  duplicate of #{request.duplicate_of}")
    if request.sla_due_at:
        lines.append(f"  SLA due {request.sla_due_at:%Y-%m-%d %H:%M} UTC")
    if request.breached_at:
        lines.append(f"  SLA breached {request.breached_at:%Y-%m-%d %H:%M} UTC")
    if request.tags:
        lines.append(f"  tags {', '.join(request.tags)}")
    if request.external_refs:
        lines.append(f"  refs {', '.join(request.external_refs)}")
    if request.description:
        lines += ["", *(f"  {line}" for line in request.description.splitlines())]
    print("\n".join(lines), file=io_.out)


def _file(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    description = args.description_file.read_text() if args.description_file else args.description
    filed = client.file_request(
        idempotency_key=args.idempotency_key,
        request_type=args.request_type,
        title=args.title,
        description=description,
        priority=args.priority,
        marketplace=args.marketplace,
        tags=args.tags,
        external_refs=args.external_refs,
        team=args.team,
        due_at=args.due_at,
    )
    if args.json:
        print(filed.model_dump_json(indent=2), file=io_.out)
        return 0
    print(f"filed #{filed.id} [{filed.status}] {filed.priority} {filed.title}", file=io_.out)
    for match in filed.similar:
        print(
            f"  possible duplicate #{match.id} (score {match.score}): {match.title} "
            f"- {'; '.join(match.reasons)}",
            file=io_.out,
        )
    return 0


def _list(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    filters: dict[str, Any] = {
        "status": args.status,
        "priority": args.priority,
        "request_type": args.request_type,
        "team": args.team,
        "tag": args.tag,
        "assignee": args.assignee,
        "q": args.q,
        "older_than": args.older_than,
        "updated_after": args.updated_after,
        "updated_before": args.updated_before,
        "breached": args.breached,
        "sort": args.sort,
    }
    if args.csv:
        with args.csv.open("wb") as sink:
            for chunk in client.export_csv(**filters):
                sink.write(chunk)
        print(f"wrote {args.csv}", file=io_.err)
        return 0
    items: list[Request] = []
    cursor = args.cursor
    while True:
        page = client.list_requests(cursor=cursor, limit=args.limit, **filters)
        items += page.items
        cursor = page.next_cursor
        if not args.all or cursor is None:
            break
    if args.json:
        print(
            json.dumps(
                {
                    "items": [item.model_dump(mode="json") for item in items],
                    "next_cursor": cursor,
                },
                indent=2,
            ),
            file=io_.out,
        )
        return 0
    for item in items:
        print(
            f"#{item.id:<10} {item.status:<21} {item.priority}  "
            f"{item.updated_at:%Y-%m-%d}  {item.title}",
            file=io_.out,
        )
    if not items:
        print("no requests match", file=io_.err)
    if cursor is not None:
        print(f"more: --cursor {cursor}", file=io_.err)
    return 0


def _show(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    request = client.get_request(args.request_id)
    _print_request(request, io_, as_json=args.json)
    if args.similar:
        similar = client.similar(args.request_id)
        if args.json:
            print(similar.model_dump_json(indent=2), file=io_.out)
        else:
            for match in similar.similar:
                print(f"  similar #{match.id} (score {match.score}): {match.title}", file=io_.out)
            if similar.duplicates:
                listed = ", ".join(f"#{d}" for d in similar.duplicates)
                print(f"  duplicates: {listed}", file=io_.out)
    return 0


def _comment(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    if args.body_file:
        body = args.body_file.read_text()
    elif args.body == "-" or args.body is None:
        body = sys.stdin.read()
    else:
        body = args.body
    if not body.strip():
        print("riskdesk: error: the comment is empty", file=io_.err)
        return 2
    comment = client.comment(
        args.request_id, body, visibility="internal" if args.internal else "public"
    )
    if args.json:
        print(comment.model_dump_json(indent=2), file=io_.out)
    else:
        print(f"commented on #{args.request_id} ({comment.visibility})", file=io_.out)
    return 0


def _confirm(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    request = client.confirm(args.request_id)
    if args.json:
        _print_request(request, io_, as_json=True)
    else:
        print(f"confirmed #{request.id}: {request.status} ({request.resolution})", file=io_.out)
    return 0


def _reopen(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    request = client.reopen(args.request_id, reason=args.reason)
    if args.json:
        _print_request(request, io_, as_json=True)
    else:
        print(f"reopened #{request.id}: {request.status}", file=io_.out)
    return 0


# --- import --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRow:
    """One data row of an import file: its 1-based number (the header is row 1) and fields."""

    number: int
    fields: dict[str, Any]


class ImportFileError(ValueError):
    """The file cannot be imported at all (no header, unknown columns)."""


def read_import_rows(content: bytes) -> list[ImportRow]:
    """The rows of an import CSV as request bodies (pure; refuses unknown columns)."""
    text = content.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise ImportFileError("the file has no header row")
    unknown = sorted(set(header) - set(IMPORT_COLUMNS))
    if unknown:
        raise ImportFileError(
            f"unknown column(s) {', '.join(unknown)}; known: {', '.join(IMPORT_COLUMNS)}"
        )
    rows = []
    for index, raw in enumerate(reader, start=2):
        values = {
            (k or "").strip(): (v or "").strip()
            for k, v in raw.items()
            if k is not None and isinstance(v, str)
        }
        if not any(values.values()):
            continue
        rows.append(ImportRow(number=index, fields=_import_body(values)))
    return rows


def _import_body(values: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("request_type", "title", "description", "priority", "marketplace", "team"):
        if values.get(name):
            body[name] = values[name]
    if values.get("due_at"):
        body["due_at"] = values["due_at"]
    for name in ("tags", "external_refs"):
        if values.get(name):
            body[name] = [part.strip() for part in values[name].split(";") if part.strip()]
    impact = {
        "accounts_affected": values.get("impact_accounts_affected"),
        "money_at_risk_per_week": values.get("impact_money_at_risk_per_week"),
        "currency": values.get("impact_currency"),
    }
    if any(impact.values()):
        # Sent as given: the API says which part is missing or malformed.
        body["impact"] = {k: v for k, v in impact.items() if v}
    return body


def import_idempotency_key(digest: str, row_number: int) -> str:
    """The Idempotency-Key of one row: the same file re-imported files nothing twice."""
    return f"import-{digest[:40]}-{row_number}"


def _progress(done: int, total: int, failed: int) -> str:
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    return f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} rows, {failed} failed"


def _import(client: RiskdeskClient, args: argparse.Namespace, io_: _Io) -> int:
    content = args.file.read_bytes()
    try:
        rows = read_import_rows(content)
    except (ImportFileError, UnicodeDecodeError, csv.Error) as error:
        print(f"riskdesk: error: cannot import {args.file}: {error}", file=io_.err)
        return 2
    digest = hashlib.sha256(content).hexdigest()
    filed: list[tuple[int, int, bool]] = []
    failures: list[tuple[int, str]] = []
    for row in _with_progress(rows, io_, failures):
        try:
            result = client.file_request(
                idempotency_key=import_idempotency_key(digest, row.number), **row.fields
            )
        except RiskdeskError as error:
            if error.status is None or (error.status >= 500 or error.status in (401, 429)):
                # Nothing later can succeed (gateway down, bad key, rate limited): stop here;
                # re-running the same file resumes without filing anything twice.
                failures.append((row.number, error.message))
                print(file=io_.err)
                _report(filed, failures, rows, io_, args.json, stopped_at=row.number)
                return 1
            failures.append((row.number, error.message))
            continue
        filed.append((row.number, result.id, bool(result.similar)))
    print(file=io_.err)
    _report(filed, failures, rows, io_, args.json, stopped_at=None)
    return 1 if failures else 0


def _with_progress(
    rows: Sequence[ImportRow], io_: _Io, failures: list[tuple[int, str]]
) -> Iterator[ImportRow]:
    total = len(rows)
    io_.err.write(_progress(0, total, 0))
    io_.err.flush()
    for index, row in enumerate(rows, start=1):
        yield row
        io_.err.write(_progress(index, total, len(failures)))
        io_.err.flush()


def _report(
    filed: list[tuple[int, int, bool]],
    failures: list[tuple[int, str]],
    rows: Sequence[ImportRow],
    io_: _Io,
    as_json: bool,
    *,
    stopped_at: int | None,
) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "rows": len(rows),
                    "filed": [{"row": r, "id": i, "has_similar": s} for r, i, s in filed],
                    "failed": [{"row": r, "error": e} for r, e in failures],
                    "stopped_at_row": stopped_at,
                },
                indent=2,
            ),
            file=io_.out,
        )
        return
    for row_number, request_id, has_similar in filed:
        note = " (has similar open requests)" if has_similar else ""
        print(f"row {row_number}: filed #{request_id}{note}", file=io_.out)
    for row_number, message in failures:
        indented = message.replace("\n", "\n    ")
        print(f"row {row_number}: FAILED {indented}", file=io_.out)
    summary = f"{len(filed)} filed, {len(failures)} failed of {len(rows)} rows"
    if stopped_at is not None:
        summary += f"; stopped at row {stopped_at} (re-run the same file to resume)"
    print(summary, file=io_.err)
