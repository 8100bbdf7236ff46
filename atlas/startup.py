"""What every long-running atlas process (server, worker, drift run) does before it works.

Create the data directory, configure logging, check that the sandbox `--sandbox` asks for can be
had, and log what the process runs with (warning about settings that are legal but probably wrong).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from atlas import __version__
from atlas.config.settings import Settings, SettingsError, setting_info
from atlas.logs import configure_logging
from atlas.runtime.sandbox import Sandbox, SandboxError, mark_undumpable, unreachable_terraform_config

log = logging.getLogger(__name__)


def require(settings: Settings, name: str, why: str) -> None:
    """SettingsError unless the setting `name` is set; `why` says what needs it."""
    if getattr(settings, name) is None:
        info = setting_info(name)
        raise SettingsError(f"{info.flag} ({info.env}) is required: {why}")


def ensure_data_dir(settings: Settings) -> None:
    """Create the data directory, or say in one line why it cannot be used."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(
            f"cannot create the data directory {settings.data_dir}: {error.strerror or error} "
            "(set --data-dir or ATLAS_DATA_DIR)"
        ) from None
    if not os.access(settings.data_dir, os.W_OK | os.X_OK):
        raise SettingsError(
            f"the data directory {settings.data_dir} is not writable (set --data-dir or ATLAS_DATA_DIR)"
        )


MULTIPROCESS_METRICS_DIR = "prometheus-multiproc"
"""Where, under the data dir, the server's web processes keep their counters for each other (`share_metrics`)."""


def share_metrics(settings: Settings) -> Path:
    """Make every process forked from this one count into one directory, emptied now, so that `/metrics`
    served by any of them sums all of them (prometheus_client's multiprocess mode).

    It must run before prometheus_client is imported, which reads `PROMETHEUS_MULTIPROC_DIR` once.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("share_metrics must run before prometheus_client is imported")
    ensure_data_dir(settings)
    directory = settings.data_dir / MULTIPROCESS_METRICS_DIR
    try:
        # What earlier processes counted is not this server's: their pids may even be reused.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    except OSError as error:
        raise SettingsError(
            f"cannot create {directory} for the web processes' metrics: {error.strerror or error} "
            "(set --data-dir or ATLAS_DATA_DIR)"
        ) from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def prepare_process(settings: Settings) -> Sandbox:
    """Create the data directory, configure logging and check the sandbox, as every long-running process does.

    Returns the sandbox pull-request code will run in; SettingsError when `--sandbox` cannot be had.
    """
    # Also for processes started without `atlas` (gunicorn's and rq's workers fork from this one).
    mark_undumpable()
    ensure_data_dir(settings)
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    from atlas.bootstrap import build_sandbox  # not loaded by `atlas version` and the like

    try:
        return build_sandbox(settings)
    except SandboxError as error:
        raise SettingsError(str(error)) from None


def log_startup(settings: Settings, role: str, sandbox: Sandbox) -> None:
    """Log what the process runs with, and warn about settings that are legal but probably wrong."""
    log.info(
        "atlas %s starting %s",
        __version__,
        role,
        extra={
            "port": settings.port,
            "atlas_url": settings.atlas_url,
            "data_dir": str(settings.data_dir),
            "gh_api_url": settings.gh_api_url,
            "repo_allowlist": settings.repo_allowlist or "none",
            "parallel_pool_size": settings.parallel_pool_size,
            "sandbox": settings.sandbox.value,
            "isolation": sandbox.isolation,
        },
    )
    if sandbox.warning:
        log.warning("SECURITY: %s", sandbox.warning)
    if sandbox.confined:
        for path in unreachable_terraform_config(settings.host_paths()):
            log.warning(
                "terraform's configuration %s is not inside the sandbox; if terraform needs it (registry "
                "credentials, provider mirrors), add %s:ro to --sandbox-paths (ATLAS_SANDBOX_PATHS)", path, path,
            )
    for flag in settings.secrets_given_as_flags():
        log.warning(
            "%s was given on the command line, where every user of this host can read it (ps, /proc/PID/cmdline); "
            "pass it as %s or in a file with %s-file instead", flag, setting_info(flag[2:].replace("-", "_")).env,
            flag,
        )
    if settings.repo_allowlist and all(entry.startswith("!") for entry in settings.repo_allowlist):
        log.warning(
            "the repository allowlist has only exclusions (! entries), so it allows no repository; add the "
            "repositories to allow before them, such as '*,!github.com/acme/secrets'"
        )
    if not settings.repo_allowlist:
        log.warning(
            "the repository allowlist is empty, so atlas acts on no repository; set --repo-allowlist "
            "(ATLAS_REPO_ALLOWLIST) to globs such as 'github.com/your-org/*', or '*' for all"
        )
    if settings.gh_webhook_secret is None and role == "server":
        log.warning(
            "no webhook secret is set and --allow-unsigned-webhooks is on, so anyone who can reach the server "
            "can send it events; set --gh-webhook-secret (ATLAS_GH_WEBHOOK_SECRET) to the secret of the "
            "GitHub webhook for anything but a local trial"
        )
    if shutil.which(settings.terraform_bin) is None:
        log.warning(
            "terraform binary %r not found; plans will fail until it is installed or "
            "--terraform-bin (ATLAS_TERRAFORM_BIN) points at it",
            settings.terraform_bin,
        )
