"""`atlas server`: the webhook server, under gunicorn (or Flask's development server with `--dev`)."""

from __future__ import annotations

import argparse
import logging

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import DOCS_POINTER, Subcommand, add_settings_arguments, settings_from_args
from atlas.config.settings import require_github_auth, require_webhook_secret
from atlas.startup import log_startup, prepare_process, share_metrics

log = logging.getLogger(__name__)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument(
        "--dev",
        action="store_true",
        help="Run Flask's development server instead of gunicorn (for local development only).",
    )


def run_server(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    require_github_auth(settings, "the server reads pull requests and comments")
    require_webhook_secret(settings)
    if not args.dev:
        # Before anything imports prometheus_client: gunicorn's web processes count into one place.
        share_metrics(settings)
    sandbox = prepare_process(settings)
    log_startup(settings, "server", sandbox)

    # Imported before gunicorn starts, so that a broken install fails here with one traceback.
    from atlas.app import create_app

    if args.dev:
        log.warning("running Flask's development server (--dev); do not use it in production")
        create_app(settings).run(host="0.0.0.0", port=settings.port, threaded=True, use_reloader=False)
        return 0

    from atlas.serving import AtlasServer

    AtlasServer(settings, workers=settings.web_workers, app_factory=create_app).run()
    return 0


SUBCOMMAND = Subcommand(
    name="server",
    summary=SUMMARIES["server"],
    run=run_server,
    add_arguments=add_server_arguments,
    description=(
        "Run the atlas server. It receives GitHub webhooks for pull requests in allowed\n"
        "repositories, runs terraform plan in an isolated working copy for each project a\n"
        "pull request changes, and reports the result as a pull-request comment and a commit\n"
        "status. Every flag can also be set by its ATLAS_* environment variable or in a YAML\n"
        "config file (--config); a flag overrides the environment, which overrides the file."
    ),
    epilog=(
        "example:\n"
        "  export ATLAS_GH_TOKEN=ghp_... ATLAS_GH_WEBHOOK_SECRET=...\n"
        "  atlas server --repo-allowlist 'github.com/acme/*' --atlas-url https://atlas.acme.com\n"
        "\n" + DOCS_POINTER
    ),
)
