"""`atlas projects`: which projects a pull request with given changes would plan, and why.

The config and project-finding modules load when the subcommand runs, so that `atlas --help` and
the other subcommands start quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from atlas.cli.catalog import SUMMARIES
from atlas.cli.subcommand import Subcommand, count, fail
from atlas.config.setting_names import ENV_PREFIX

if TYPE_CHECKING:
    from atlas.config.server import EffectiveConfig
    from atlas.vcs import ChangedFile


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
        return fail(f"{repo} is not a directory (see --repo)")
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
        return fail(str(error))
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
    files = count(len(paths), "changed file")
    print(f"{count(len(rows), 'project')} to plan for {files} into {base_branch}; {found_by}.")
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


SUBCOMMAND = Subcommand(
    name="projects",
    summary=SUMMARIES["projects"],
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
