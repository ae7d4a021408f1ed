"""``kernsim faults``: one place to see and set the fault profile of a whole cluster.

Every service has its own fault layer behind ``GET``/``PUT /faults`` on its admin
port; this command sends the same document to all six, as Toxiproxy users expect
one control point for faults:

    kernsim faults show                          # the compose main stack (admin 9101-9106)
    kernsim faults set hdd --stack compare       # the compare stack (9111-9116)
    kernsim faults set cluster-hdd --admin http://127.0.0.1:41233,http://127.0.0.1:39411,...

``--admin`` lists the admin URLs of the services (``kernsim up`` prints them).
Exit 0 when every service answered, 2 for bad usage (an unknown profile is refused
before anything is sent), 3 when a service did not answer or refused the change
(named on stderr; the others keep what they were sent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from kernsim.cli import options
from kernsim.cli.parser import UsageError
from kernsim.exits import Exit
from kernsim.faults import load_profile

SERVICES = ("mm", "memcg", "blockdev", "vmscan", "workqueue", "tasks")
#: The compose deployment's admin ports (docker-compose.yml, deploy/prometheus/prometheus.yml).
STACK_BASE = {"main": 9101, "compare": 9111}


def admin_urls(args: argparse.Namespace) -> list[str]:
    if args.admin:
        urls = [u.strip().rstrip("/") for part in args.admin for u in part.split(",") if u.strip()]
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if bad or not urls:
            raise UsageError(f"--admin takes http:// URLs, got {bad or args.admin}")
        return urls
    base = STACK_BASE[args.stack]
    return [f"http://{args.host}:{base + i}" for i in range(len(SERVICES))]


def _request(url: str, method: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/faults", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    token = os.environ.get("KERNSIM_TOKEN")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(text).get("error", text)
        raise OSError(f"HTTP {exc.code}: {text}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"no answer ({reason})") from None


def _summary(name: str, d: dict[str, Any]) -> str:
    prof = d.get("profile", {})
    held = ", ".join("->".join(link) for link in d.get("held", [])) or "none"
    paused = ", ".join(d.get("paused", [])) or "none"
    return (
        f"{name:10} profile {prof.get('name', '?'):14} held {held}; paused {paused}; "
        f"queued {d.get('queued', 0)}"
    )


def cmd_faults(args: argparse.Namespace) -> int:
    urls = admin_urls(args)
    if args.action == "set":
        try:
            load_profile(args.profile)
        except (ValueError, OSError) as exc:
            raise UsageError(str(exc)) from exc
    status = Exit.OK
    for i, url in enumerate(urls):
        name = SERVICES[i] if len(urls) == len(SERVICES) else url
        try:
            seen = _request(url, "GET")
            if args.action == "set":
                seen = _request(url, "PUT", {"profile": args.profile})
            elif args.action == "reset":
                # Profile none, and every held link released, every paused service resumed.
                change = {"profile": "none", "release": seen["held"], "resume": seen["paused"]}
                seen = _request(url, "PUT", change)
        except (OSError, KeyError, TypeError) as exc:
            print(f"kernsim: faults: {name} at {url}: {exc}", file=sys.stderr)
            status = Exit.SERVICE
            continue
        print(json.dumps({"service": name, **seen}) if args.json else _summary(name, seen))
    return status


def register(sub: Any) -> None:
    """Add ``faults`` to the kernsim command line."""
    p = sub.add_parser(
        "faults",
        help="show or set the fault profile of every service of a cluster",
        description="Send one fault change to all six services of a running cluster "
        "(PUT /faults on each admin port), or show what each one has.  Exit 0 when every "
        "service answered, 2 for bad usage, 3 when one did not (named on stderr).",
    )
    p.add_argument(
        "action",
        choices=["show", "set", "reset"],
        help="show: each service's profile, held links, paused services; set PROFILE; "
        "reset: profile none, every link released, every service resumed",
    )
    p.add_argument("profile", nargs="?", help="with set: a shipped profile name (deploy/faults)")
    p.add_argument(
        "--stack",
        choices=list(STACK_BASE),
        default="main",
        help="the compose stack: main (admin ports 9101-9106) or compare (9111-9116) "
        "(default: %(default)s)",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="host of the compose stack's ports (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--admin",
        action="append",
        metavar="URL[,URL...]",
        help="admin URLs of the services instead (kernsim up prints them), in the order "
        "mm, memcg, blockdev, vmscan, workqueue, tasks (default: the --stack's ports)",
    )
    options.add_json(p, "one JSON object per service", "one line per service")
    p.set_defaults(handler=_checked)


def _checked(args: argparse.Namespace) -> int:
    if args.action == "set" and not args.profile:
        raise UsageError("faults set needs a profile name, e.g. kernsim faults set hdd")
    if args.action != "set" and args.profile:
        raise UsageError(f"faults {args.action} takes no profile")
    return cmd_faults(args)
