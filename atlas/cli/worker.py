"""`atlas worker`: worker processes that run the jobs atlas servers queue in Redis (see `atlas.worker`)."""

from __future__ import annotations

import argparse

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import DOCS_POINTER, Subcommand, add_settings_arguments, settings_from_args


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        default=1,
        help="Worker processes to start; each runs one job at a time. (default: 1)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        default=None,
        help="Serve each worker process's Prometheus metrics (its jobs, terraform runs, GitHub calls) at "
             "http://HOST:PORT/metrics, the Nth worker process on PORT+N-1; scrape each as a target. "
             "(default: none)",
    )


def run_worker(args: argparse.Namespace) -> int:
    # Imported here, so that rq loads only for the command that needs it.
    from atlas.worker import run

    return run(settings_from_args(args), concurrency=args.concurrency, metrics_port=args.metrics_port)


SUBCOMMAND = Subcommand(
    name="worker",
    summary=SUMMARIES["worker"],
    run=run_worker,
    add_arguments=add_worker_arguments,
    description=(
        "Run atlas worker processes. With --redis-url, atlas servers queue their jobs in Redis\n"
        "and workers on any host run them: jobs of one pull request one after another, jobs of\n"
        "different pull requests in parallel. A worker takes the same settings as the server\n"
        "(flags, ATLAS_* variables, --config); each may have its own --data-dir. SIGTERM lets\n"
        "running jobs finish; a job whose worker dies is reported within seconds."
    ),
    epilog=(
        "example:\n"
        "  export ATLAS_GH_TOKEN=ghp_... ATLAS_REDIS_URL=redis://redis:6379/0\n"
        "  atlas worker --concurrency 4 --data-dir /var/lib/atlas\n"
        "\n" + DOCS_POINTER
    ),
)
