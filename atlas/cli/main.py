"""atlas's command line: `atlas server`, `atlas version`, and the registry later subcommands join.

Each subcommand is a `Subcommand` in `SUBCOMMANDS`: a function that adds its arguments and a
function that runs it with the parsed arguments and returns the exit status. Subcommands that need
settings call `add_settings_arguments()` and `settings_from_args()`, so they share the server's flags.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from atlas import __version__
from atlas.config.settings import (
    CONFIG_ENV,
    ENV_PREFIX,
    Group,
    Settings,
    SettingsError,
    load_settings,
    require_webhook_secret,
    setting_info,
    setting_infos,
)
from atlas.logs import configure_logging
from atlas.runtime.sandbox import Sandbox, SandboxError, mark_undumpable, unreachable_terraform_config
from atlas.stores.locks import LockStore, ProjectLock, Release

if TYPE_CHECKING:
    from atlas.commands.context import CommandContext
    from atlas.config.server import EffectiveConfig
    from atlas.drift.check import RepoCheck
    from atlas.vcs import ChangedFile

log = logging.getLogger(__name__)

EXIT_USAGE = 2
"""Exit status for a wrong command line or setting, as argparse uses."""

README_SECTIONS = ("Connecting a GitHub repository", "TLS and reverse proxies")
"""The README sections `atlas server --help` points to (a test checks that they exist)."""

DOCS_POINTER = (
    "Every setting is described in config/server.example.yaml. How to create the token and the\n"
    f'webhook is in the README\'s "{README_SECTIONS[0]}" section; serving over TLS, behind a\n'
    f'proxy or not, in "{README_SECTIONS[1]}".'
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and epilogs as written and never splits `[env: X]` or `(default: Y)`."""

    _unbreakable = re.compile(r"\[env: [^\]]*\]|\(default: [^)]*\)")

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        text = " ".join(text.split())
        text = self._unbreakable.sub(lambda match: match.group().replace(" ", "\0"), text)
        lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
        return [line.replace("\0", " ") for line in lines]


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line that points at `--help`."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


@dataclass(frozen=True)
class Subcommand:
    """One `atlas NAME` subcommand: how to add its arguments and how to run it."""

    name: str
    summary: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)
    description: str | None = None
    epilog: str | None = None


SUBCOMMANDS: dict[str, Subcommand] = {}


def register(subcommand: Subcommand) -> Subcommand:
    """Add a subcommand to `atlas`; later modules register theirs the same way."""
    SUBCOMMANDS[subcommand.name] = subcommand
    return subcommand


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every setting, grouped as in the example config, plus `--config`.

    Flags default to SUPPRESS so that only given flags override the environment and the file;
    values stay strings so that `load_settings()` reports a wrong one like any other source.
    """
    groups = {group: parser.add_argument_group(f"{group.value} settings") for group in Group}
    for info in setting_infos():
        help_text = f"{info.description} [env: {info.env}]"
        if info.shown_default is not None:
            help_text += f" (default: {info.shown_default})"
        help_text = help_text.replace("%", "%%")
        group = groups[info.group]
        if info.is_bool:
            group.add_argument(
                info.flag,
                dest=info.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                info.flag, dest=info.name, metavar=info.metavar, default=argparse.SUPPRESS, help=help_text
            )
    groups[Group.SERVER].add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"YAML file of settings, keyed by flag name without dashes. [env: {CONFIG_ENV}]",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings given by flags, `ATLAS_*` variables and the config file; SettingsError if wrong."""
    given = {info.name: getattr(args, info.name) for info in setting_infos() if hasattr(args, info.name)}
    return load_settings(given, config_file=getattr(args, "config", None))


def require(settings: Settings, name: str, why: str) -> None:
    """SettingsError unless the setting `name` is set; `why` says what needs it."""
    if getattr(settings, name) is None:
        info = setting_info(name)
        raise SettingsError(f"{info.flag} ({info.env}) is required: {why}")


def prepare_process(settings: Settings) -> Sandbox:
    """Create the data directory, configure logging and check the sandbox, as every long-running process does.

    Returns the sandbox pull-request code will run in; SettingsError when `--sandbox` cannot be had.
    """
    # Also for processes started without `atlas` (gunicorn's and rq's workers fork from this one).
    mark_undumpable()
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
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    from atlas.commands.context import sandbox_for

    try:
        return sandbox_for(settings)
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


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument(
        "--dev",
        action="store_true",
        help="Run Flask's development server instead of gunicorn (for local development only).",
    )


def run_server(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    require(settings, "gh_token", "the server needs a GitHub token to read pull requests and comment")
    require_webhook_secret(settings)
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


register(
    Subcommand(
        name="server",
        summary="Run the atlas server that receives GitHub webhooks.",
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
)


def terraform_version(binary: str) -> str | None:
    """The version of the terraform `binary`, or None when it cannot be run."""
    path = shutil.which(binary)
    if path is None:
        return None
    # terraform must not see atlas's settings, which include its secrets.
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    try:
        result = subprocess.run(
            [path, "version", "-json"], capture_output=True, text=True, timeout=30, env=env, check=True
        )
        version = json.loads(result.stdout)["terraform_version"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None
    return f"{version} ({path})"


def run_version(args: argparse.Namespace) -> int:
    print(f"atlas {__version__}")
    binary = os.environ.get(f"{ENV_PREFIX}TERRAFORM_BIN") or "terraform"
    version = terraform_version(binary)
    print(f"terraform {version}" if version else f"terraform: {binary!r} not found or not runnable")
    return 0


register(
    Subcommand(
        name="version",
        summary="Print atlas's version and the version of terraform it finds.",
        run=run_version,
    )
)


def add_locks_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="locks_action", required=True)
    listing = actions.add_parser(
        "list",
        help="Print the locks and who waits for them.",
        usage="%(prog)s [-h] [--json] [--data-dir DIR] [--config FILE] [any server setting]",
        description=(
            "Print every project lock in the data directory: its id, repository, project dir and\n"
            "workspace, the pull request holding it, who caused it and since when, and the pull\n"
            "requests waiting for it, first in line first."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    listing.add_argument("--json", action="store_true", help="Print the locks as a JSON array instead of a table.")
    add_settings_arguments(listing)
    unlock = actions.add_parser(
        "unlock",
        help="Release one lock, handing it over to the first pull request waiting for it.",
        usage="%(prog)s [-h] LOCK_ID [--data-dir DIR] [--gh-token TOKEN] [--config FILE] [any server setting]",
        description=(
            "Release the lock LOCK_ID (as `atlas locks list` shows it). If a pull request waits for\n"
            "the project, the lock passes to it at once and the atlas server plans it. With a GitHub\n"
            "token configured, the pull request that held the lock is told in a comment."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    unlock.add_argument("lock_id", metavar="LOCK_ID", help="The id of the lock, from `atlas locks list`.")
    add_settings_arguments(unlock)
    for action_parser in (listing, unlock):
        # Errors in an action's arguments point at that action's --help.
        action_parser.set_defaults(parser=action_parser)


def run_locks(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    from atlas.commands.context import build_context

    database = settings.data_dir / "atlas.db"
    # Reading must not create a data directory where there is none (a mistyped --data-dir).
    ctx = build_context(settings) if settings.redis_url is not None or database.exists() else None
    store = ctx.locks if ctx is not None else None
    if args.locks_action == "list":
        return _list_locks(store, database, as_json=args.json)
    return _unlock(ctx, database, args.lock_id, settings)


def _list_locks(store: LockStore | None, database: Path, *, as_json: bool) -> int:
    locks = store.all() if store is not None else []
    waiting = {lock.id: store.waiting(lock.repo, lock.project) for lock in locks} if store is not None else {}
    if as_json:
        print(json.dumps([lock.model_dump(mode="json") | {"waiting": waiting[lock.id]} for lock in locks], indent=2))
        return 0
    if not locks:
        print(f"No locks in {database}.")
        return 0
    header = ("LOCK ID", "REPO", "DIR", "WORKSPACE", "PR", "USER", "SINCE", "WAITING")
    rows = [
        (
            lock.id,
            lock.repo,
            lock.project.dir,
            lock.project.workspace,
            f"#{lock.pull_number}",
            lock.user,
            _since(lock),
            ", ".join(f"#{number}" for number in waiting[lock.id]) or "-",
        )
        for lock in locks
    ]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _unlock(ctx: CommandContext | None, database: Path, lock_id: str, settings: Settings) -> int:
    from atlas.stores import audit

    release = ctx.locks.release(lock_id) if ctx is not None else None
    if ctx is None or release is None or not release.released:
        print(f"atlas: error: no lock with id {lock_id!r} in {database} (see 'atlas locks list')", file=sys.stderr)
        return 1
    lock = release.released[0]
    # As the web page's discard does: the plan made under the lock goes with it, and it is audited.
    plans = ctx.forget_plans(lock.repo, lock.pull_number, lock.project)
    audit.record(ctx, audit.AuditEntry(
        action=audit.AuditAction.UNLOCK, repo=lock.repo, user=getpass.getuser(), outcome="released",
        pull_number=lock.pull_number, project=lock.project, trigger="cli",
        detail=f"atlas locks unlock; {len(plans)} plan(s) discarded"
               + (f"; handed over to #{release.handed_over[0].pull_number}" if release.handed_over else ""),
    ))
    print(
        f"Released the lock on {lock.repo} {lock.project.dir} (workspace {lock.project.workspace}), "
        f"held by #{lock.pull_number} ({lock.user}) since {_since(lock)}."
    )
    for heir in release.handed_over:
        print(f"Handed it over to #{heir.pull_number} ({heir.user}), which was waiting for it; atlas plans it next.")
    if settings.gh_token is None:
        print(f"No GitHub token is configured (--gh-token), so {lock.pull_key} was not told in a comment.")
        return 0

    from atlas.github.client import GitHubClient
    from atlas.vcs import VCSError

    client = GitHubClient(settings.gh_token.get_secret_value(), settings.gh_api_url)
    try:
        client.post_comment(lock.vcs_repo(), lock.pull_number, _unlock_comment(lock, release, settings))
    except VCSError as error:
        print(f"atlas: warning: the lock is released, but telling {lock.pull_key} failed: {error}", file=sys.stderr)
    else:
        print(f"Told {lock.pull_key} in a comment.")
    finally:
        client.close()
    return 0


def _unlock_comment(lock: ProjectLock, release: Release, settings: Settings) -> str:
    """What the pull request whose lock an operator removed reads."""
    project = f"`{lock.project.dir}` (workspace `{lock.project.workspace}`)"
    text = f"**Lock removed**: an operator released this pull request's lock on {project} (`atlas locks unlock`).\n\n"
    if release.handed_over:
        text += f"The lock passed to #{release.handed_over[0].pull_number}, which was waiting for it. "
    else:
        text += "Other pull requests can now plan and apply this project. "
    return text + f"Comment `{settings.comment_prefix[0]} plan` to plan it here again."


def _since(lock: ProjectLock) -> str:
    return lock.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


register(
    Subcommand(
        name="locks",
        summary="List the project locks, or release one.",
        run=run_locks,
        add_arguments=add_locks_arguments,
        description=(
            "Inspect and release project locks. A pull request locks each project it plans until it\n"
            "is merged or closed; other pull requests wait for it in a queue. These commands read\n"
            "the data directory (--data-dir) directly, so they work whether or not the server runs."
        ),
        epilog=(
            "examples:\n"
            "  atlas locks list --data-dir /var/lib/atlas\n"
            "  atlas locks unlock YWNtZS9pbmZyYS9hcHAvZGVmYXVsdA --data-dir /var/lib/atlas"
        ),
    )
)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        default=1,
        help="Worker processes to start; each runs one job at a time. (default: 1)",
    )


def run_worker(args: argparse.Namespace) -> int:
    # Imported here, so that rq loads only for the command that needs it.
    from atlas.worker import run

    return run(args)


register(
    Subcommand(
        name="worker",
        summary="Run worker processes that take jobs from Redis (with --redis-url).",
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
)


# --- atlas projects / atlas config validate --------------------------------------------------------


def add_projects_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", metavar="DIR", type=Path, default=Path("."), help="The repository checkout (default: .)."
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="The branch the pull request merges into; also what the changed files are compared with "
        "(default: the remote's default branch, else main).",
    )
    parser.add_argument(
        "--changed",
        metavar="FILE",
        nargs="+",
        action="extend",
        help="The files the pull request changes, relative to the repository root (default: git diff --name-status "
        "BASE...HEAD in DIR).",
    )
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument(
        "--repo-config",
        metavar="FILE",
        type=Path,
        help="The server's repos.yaml: apply its policy for the repository (default: allow every repo config key).",
    )
    parser.add_argument(
        "--repo-id",
        metavar="HOST/OWNER/NAME",
        help="The repository's id in repos.yaml (default: from the origin remote's URL).",
    )


def run_projects(args: argparse.Namespace) -> int:
    from atlas.config.raw import ConfigError
    from atlas.runtime.project_selection import changed_paths, select_projects
    from atlas.vcs import ChangedFile

    repo: Path = args.repo
    if not repo.is_dir():
        return _fail(f"{repo} is not a directory (see --repo)")
    try:
        base_ref = args.base or _default_base(repo)
        base_branch = _branch_name(base_ref)
        changed = (
            [ChangedFile(filename=name.replace("\\", "/").removeprefix("./")) for name in args.changed]
            if args.changed
            else _git_changes(repo, base_ref)
        )
        effective = _repo_effective_config(repo, args.repo_config, args.repo_id, base_branch)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 1
    except _GitError as error:
        return _fail(str(error))
    if effective is None:
        return 0
    rows = []
    for match in select_projects(repo, changed, effective, base_branch=base_branch):
        settings = effective.for_project(match.project)
        rows.append(
            {
                "name": match.project.name,
                "dir": match.project.dir,
                "workspace": match.project.workspace,
                "reason": match.reason,
                "workflow": settings.workflow.name,
                "execution_order_group": settings.execution_order_group,
            }
        )
    source = effective.repo_config.file if effective.repo_config is not None else None
    paths = changed_paths(changed)
    if args.json:
        print(json.dumps({"config": source, "base": base_branch, "changed": paths, "projects": rows}, indent=2))
        return 0
    found_by = (
        f"{source} ({len(effective.projects)} configured)"
        if source
        else "no repo config, projects found from the changes"
    )
    files = _count(len(paths), "changed file")
    print(f"{_count(len(rows), 'project')} to plan for {files} into {base_branch}; {found_by}.")
    table = [("DIR", "WORKSPACE", "NAME", "REASON")]
    table += [(str(row["dir"]), str(row["workspace"]), str(row["name"] or "-"), str(row["reason"])) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for line in table if rows else ():
        print("  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)) + "  " + line[3])
    return 0


def _repo_effective_config(
    repo: Path, repo_config_path: Path | None, repo_id: str | None, base_branch: str
) -> EffectiveConfig | None:
    """The checkout's config within repos.yaml's policy (or one allowing everything); None: atlas ignores the branch."""
    from atlas.config.loading import load_repo_config
    from atlas.config.server import RepoPolicy, apply_repo_config, load_server_config

    repo_id = repo_id or _origin_id(repo)
    if repo_config_path is not None:
        if repo_id is None:
            raise _GitError(
                f"cannot tell the repository's id from {repo}'s origin remote; pass --repo-id HOST/OWNER/NAME"
            )
        server = load_server_config(repo_config_path)
        policy = server.for_repo(repo_id, base_branch)
        if not policy.branch_matches(base_branch):
            print(f"{repo_id}: atlas ignores pull requests into {base_branch} (repos.yaml branch: {policy.branch}).")
            return None
        repo_config = load_repo_config(repo, policy.repo_config_file, server_workflows=list(server.workflows))
    else:
        repo_config = load_repo_config(repo)
        # Without repos.yaml, workflows the config names but does not define are taken to be the server's.
        named = {project.workflow for project in repo_config.projects if project.workflow} if repo_config else set()
        defined = set(repo_config.workflows) if repo_config else set()
        policy = RepoPolicy.allowing_everything(repo_id or "local", sorted(named - defined))
    effective = apply_repo_config(policy, repo_config)
    if isinstance(effective, Exception):
        raise effective
    return effective


class _GitError(Exception):
    """git could not tell what a pull request changes; the message says what to do."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise _GitError(f"cannot run git: {error} (install git, or list the files with --changed)") from None


def _default_base(repo: Path) -> str:
    remote_head = _git(repo, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if remote_head.returncode == 0 and remote_head.stdout.strip():
        return remote_head.stdout.strip()
    for candidate in ("main", "master"):
        if _git(repo, "rev-parse", "--verify", "--quiet", candidate).returncode == 0:
            return candidate
    return "main"


def _branch_name(ref: str) -> str:
    """`origin/main`, `refs/heads/main` and `main` all name the branch main."""
    for prefix in ("refs/heads/", "refs/remotes/origin/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _git_changes(repo: Path, base_ref: str) -> list[ChangedFile]:
    from atlas.vcs import ChangedFile, FileStatus

    result = _git(repo, "diff", "--name-status", "-z", "-M", f"{base_ref}...HEAD")
    if result.returncode != 0:
        problem = " ".join(result.stderr.split()) or f"git exited with status {result.returncode}"
        raise _GitError(
            f"cannot list the changes of {repo} against {base_ref}: {problem} "
            "(set --base, or list the files with --changed)"
        )
    fields = result.stdout.split("\0")
    statuses = {"A": FileStatus.ADDED, "D": FileStatus.REMOVED, "R": FileStatus.RENAMED, "C": FileStatus.COPIED}
    changes: list[ChangedFile] = []
    position = 0
    while position < len(fields) and fields[position]:
        status = fields[position][0]
        if status in "RC":
            changes.append(
                ChangedFile(
                    filename=fields[position + 2], previous_filename=fields[position + 1], status=statuses[status]
                )
            )
            position += 3
        else:
            changes.append(ChangedFile(filename=fields[position + 1], status=statuses.get(status, FileStatus.MODIFIED)))
            position += 2
    return changes


def _origin_id(repo: Path) -> str | None:
    """`HOST/OWNER/NAME` from the origin remote's URL (https or scp-like ssh), or None."""
    result = _git(repo, "remote", "get-url", "origin")
    url = result.stdout.strip() if result.returncode == 0 else ""
    match = re.match(r"^(?:[a-z+]+://)?(?:[^@/]+@)?([^/:]+)(?::\d+)?[:/](.+?)(?:\.git)?/?$", url)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _fail(message: str) -> int:
    print(f"atlas: error: {message}", file=sys.stderr)
    return 1


register(
    Subcommand(
        name="projects",
        summary="Show which projects a pull request with given changes would plan, and why.",
        run=run_projects,
        add_arguments=add_projects_arguments,
        description=(
            "Print the projects and workspaces atlas would plan for a pull request, with the reason for\n"
            "each. atlas reads the repository's atlas.yaml or atlantis.yaml the way the server does;\n"
            "without one, it finds the Terraform root modules the changed files touch. The changed files\n"
            "are BASE...HEAD in the checkout unless listed with --changed."
        ),
        epilog=(
            "examples:\n"
            "  atlas projects --repo . --base origin/main\n"
            "  atlas projects --changed modules/vpc/main.tf envs/prod/terraform.tfvars --json\n"
            "  atlas projects --repo-config /etc/atlas/repos.yaml --repo-id github.com/acme/infra"
        ),
    )
)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="config_action", required=True)
    validate = actions.add_parser(
        "validate",
        help="Check a repo config (atlas.yaml, atlantis.yaml), a server repos.yaml or a server settings file.",
        description=(
            "Check FILE the way atlas reads it: a repository's atlas.yaml or atlantis.yaml; the server's\n"
            "repos.yaml (top-level repos: or workflows:); or the server's settings file, the one\n"
            "`atlas server --config FILE` reads (keys are flags without dashes, as in\n"
            "config/server.example.yaml). With --server FILE is one of the server's two. Prints\n"
            "'FILE: valid' and exits 0, or prints the first problem and exits 1."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    validate.add_argument("file", metavar="FILE", type=Path, help="The file to check.")
    validate.add_argument(
        "--server", action="store_true",
        help="FILE is the server's: its repos.yaml, or its settings file (--config) when it has no repos: or "
        "workflows: key.",
    )
    validate.set_defaults(parser=validate)


def run_config(args: argparse.Namespace) -> int:
    from atlas.config.loading import parse_repo_config
    from atlas.config.raw import MAX_CONFIG_BYTES, ConfigError, parse_yaml
    from atlas.config.server import parse_server_config

    path: Path = args.file
    name = str(path)
    try:
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(name, "", f"is larger than {MAX_CONFIG_BYTES // 1024} KiB")
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(name, "", "is not UTF-8 text") from None
        except OSError as error:
            raise ConfigError(name, "", f"cannot be read: {error.strerror or error}") from None
        data = parse_yaml(text, name).data
        server_shaped = isinstance(data, dict) and "version" not in data and ("repos" in data or "workflows" in data)
        keys = {str(key).replace("_", "-") for key in data} if isinstance(data, dict) else set()
        settings_shaped = bool(keys) and keys <= {info.key for info in setting_infos()}
        if (args.server and not server_shaped) or settings_shaped:
            return _validate_settings_file(path)
        if args.server or server_shaped:
            server = parse_server_config(text, name)
            repos, workflows = len(server.repos), len(server.workflows)
            print(f"{name}: valid ({_count(repos, 'repo entry', 'repo entries')}, {_count(workflows, 'workflow')})")
        else:
            # A repo config sits at its repository's root, which an absolute dir is checked against.
            config = parse_repo_config(text, name, repo_dir=path.absolute().parent)
            print(f"{name}: valid ({_count(len(config.projects), 'project')})")
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 1
    return 0


def _validate_settings_file(path: Path) -> int:
    """`atlas config validate` of a server settings file: every key a setting, every value valid."""
    from atlas.config.raw import ConfigError
    from atlas.config.server import load_server_config

    try:
        settings = load_settings(config_file=path, env={})
    except SettingsError as error:
        print(str(error), file=sys.stderr)
        return 1
    keys = _yaml_keys(path)
    detail = _count(len(keys), "setting")
    if settings.repo_config is not None:
        if settings.repo_config.is_file():
            try:
                server = load_server_config(settings.repo_config)
            except ConfigError as error:
                print(str(error), file=sys.stderr)
                return 1
            entries = _count(len(server.repos), "repo entry", "repo entries")
            detail += f"; repo-config {settings.repo_config}: valid ({entries})"
        else:
            detail += f"; repo-config {settings.repo_config} is not on this machine, so it was not checked"
    print(f"{path}: valid server settings ({detail})")
    return 0


def _yaml_keys(path: Path) -> list[str]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [str(key) for key in data] if isinstance(data, dict) else []


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


register(
    Subcommand(
        name="config",
        summary="Check atlas.yaml, atlantis.yaml or repos.yaml files.",
        run=run_config,
        add_arguments=add_config_arguments,
        description="Work with atlas's configuration files.",
        epilog=(
            "examples:\n  atlas config validate atlantis.yaml\n  atlas config validate --server /etc/atlas/repos.yaml\n"
            "  atlas config validate --server /etc/atlas/server.yaml"
        ),
    )
)


# --- atlas drift run ------------------------------------------------------------------------------


def add_drift_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="drift_action", required=True)
    run = actions.add_parser(
        "run",
        help="Check now whether the live infrastructure matches the default branch.",
        usage="%(prog)s [-h] [--repo OWNER/NAME] [--project PROJECT] [--config FILE] [any server setting]",
        description=(
            "Plan every drift-enabled project (repos.yaml drift: blocks, repo config overrides) at its\n"
            "repository's default branch head, report to GitHub exactly as a scheduled check does (drift\n"
            "issue, atlas/drift status), remediate where enabled, and print a summary. Takes the server's\n"
            "flags, ATLAS_* variables and config file.\n"
            "\n"
            "Exit status: 0 when everything is in sync, 2 when drift was found (remediated or not),\n"
            "1 when a check failed or could not run."
        ),
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument(
        "--repo",
        metavar="OWNER/NAME",
        action="append",
        default=[],
        help="Check this repository (repeat for more), not every repository a repos.yaml drift: block applies to.",
    )
    run.add_argument(
        "--project",
        metavar="PROJECT",
        help="Check only this project (its name, dir, or DIR/WORKSPACE), even if its drift detection is off.",
    )
    add_settings_arguments(run)
    run.set_defaults(parser=run)


def run_drift(args: argparse.Namespace) -> int:
    from atlas.config.raw import ConfigError

    bad = [name for name in args.repo if not re.fullmatch(r"[^/\s]+/[^/\s]+", name)]
    if bad:
        return _fail(f"--repo takes OWNER/NAME, not {bad[0]!r}")
    try:
        settings = settings_from_args(args)
        require(settings, "gh_token", "drift checks read repositories and report on GitHub")
        sandbox = prepare_process(settings)
        if sandbox.warning:
            log.warning("SECURITY: %s", sandbox.warning)
        from atlas.commands.context import build_context

        ctx = build_context(settings)
    except (SettingsError, ConfigError) as error:
        # Not the usage status 2, which here means that drift was found.
        return _fail(str(error))
    from atlas.drift import check as drift
    from atlas.models import DriftStatus

    checks = drift.run_checks(ctx, repos=args.repo, project=args.project, trigger="cli", user=_local_user())
    if not checks:
        print("No repository has drift detection on: give a repos.yaml entry (--repo-config) a drift: block, "
              "or name a repository with --repo.")
        return 0
    for check in checks:
        _print_drift_check(check)
    records = [record for check in checks for record in check.records]
    counts = {status: sum(1 for record in records if record.status is status) for status in DriftStatus}
    print(f"{_count(len(records), 'project')} checked: "
          + ", ".join(f"{count} {status.value.replace('_', ' ')}" for status, count in counts.items()) + ".")
    return drift.exit_code(checks)


def _print_drift_check(check: RepoCheck) -> None:
    where = f" at {check.sha[:7]}" if check.sha else ""
    if check.error is not None:
        print(f"{check.repo}{where}: check failed: {check.error}")
    elif not check.records:
        print(f"{check.repo}{where}: no project to check.")
    else:
        print(f"{check.repo}{where}:")
    width = max((len(f"{r.project.name or r.project.dir} ({r.project.workspace})") for r in check.records), default=0)
    for record in check.records:
        label = f"{record.project.name or record.project.dir} ({record.project.workspace})"
        line = f"  {label.ljust(width)}  {record.status.value.replace('_', ' ').ljust(10)}"
        if record.error:
            line += f"  {record.error.splitlines()[0]}"
        elif record.resources:
            line += f"  {', '.join(r.address for r in record.resources)}"
        if record.remediation is not None:
            line += f"; remediation {record.remediation.status.value}: {record.remediation.detail}"
        if record.issue_url:
            line += f" ({record.issue_url})"
        print(line.rstrip())
    if check.not_enabled:
        names = ", ".join(p.name or p.dir for p in check.not_enabled)
        print(f"  drift detection is off for {names}; name one with --project to check it anyway.")


def _local_user() -> str:
    """Who runs `atlas drift run`, for the audit log."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


register(
    Subcommand(
        name="drift",
        summary="Check for drift between the live infrastructure and the default branch.",
        run=run_drift,
        add_arguments=add_drift_arguments,
        description=(
            "Drift detection: whether the live infrastructure still matches each repository's default\n"
            "branch. The server checks on the schedules of repos.yaml's drift: blocks; `atlas drift run`\n"
            "checks now, in its own process."
        ),
        epilog=(
            "examples:\n"
            "  atlas drift run --config /etc/atlas/server.yaml\n"
            "  atlas drift run --repo acme/infra --project app"
        ),
    )
)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="atlas",
        description="atlas: Terraform pull-request automation for GitHub.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"atlas {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    for subcommand in SUBCOMMANDS.values():
        subparser = commands.add_parser(
            subcommand.name,
            help=subcommand.summary,
            description=subcommand.description or subcommand.summary,
            epilog=subcommand.epilog,
            formatter_class=HelpFormatter,
            allow_abbrev=False,
        )
        subparser.set_defaults(run=subcommand.run, parser=subparser)
        subcommand.add_arguments(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before any secret is read: other processes of this user must not read them from /proc.
    mark_undumpable()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, so that the error points at its --help
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = args.run(args)
    except SettingsError as error:
        print(f"atlas: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return status
