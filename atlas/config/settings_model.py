"""The `Settings` model: every setting atlas has, as one field each, with its checks.

Over 500 lines on purpose: the fields are the one list of what an operator can set, in the order
`--help` and the example config show them; splitting them across files would scatter that list.
What declares a field is in `setting_types`; loading and documenting them is in `settings`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from atlas.config.raw import REQUIREMENTS
from atlas.config.sandbox_settings import HostPath, SandboxMode
from atlas.config.setting_types import (
    SECRET_FILES,
    CommaList,
    Group,
    LogFormat,
    LogLevel,
    SettingsError,
    Source,
    apply_on_merge_words,
    flag_of,
    git_host_url,
    http_url,
    is_secret,
    lower,
    reaction_name,
    read_secret_file,
    setting,
)
from atlas.config.team_rights import TeamRight, parse_team_rights
from atlas.config.valid import ApplyOnMerge
from atlas.config.versions import VersionConstraint, VersionSyntaxError
from atlas.gitlab.hosts import DEFAULT_HOSTNAME as DEFAULT_GITLAB_HOSTNAME
from atlas.gitlab.hosts import HostnameError, gitlab_base_url, gitlab_host
from atlas.models import Distribution, VCSHost, repo_key
from atlas.notify.config import HttpWebhook, SlackWebhook, parse_http_headers, parse_webhooks, webhook_secrets
from atlas.vocabulary import KNOWN_COMMANDS


def _webhooks(value: object) -> object:
    """`webhooks:` as written (a YAML list, or JSON text from a flag or variable) → validated webhooks."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"is not valid JSON: {error.msg}") from None
    if isinstance(value, list) and all(isinstance(item, SlackWebhook | HttpWebhook) for item in value):
        return value
    return list(parse_webhooks(value))


def _http_headers(value: object) -> object:
    if isinstance(value, list):
        return value
    return list(parse_http_headers(value))


class Settings(BaseSettings):
    """Everything an atlas process is configured with; build it with `load_settings()`.

    Constructing `Settings(...)` directly validates exactly the given values (it reads no
    environment or file), which is what tests want.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid", validate_default=True)

    _sources: dict[str, Source] = PrivateAttr(default_factory=dict)
    _config_file: Path | None = PrivateAttr(default=None)

    # GitHub
    gh_token: SecretStr | None = setting(
        None,
        "GitHub token atlas reads pull requests and posts comments and commit statuses with. "
        "Required by the server; prefer the environment variable, since flags show in the process list.",
        Group.GITHUB,
        metavar="TOKEN",
        example="ghp_xxxxxxxxxxxxxxxxxxxx",
    )
    gh_token_file: Path | None = setting(
        None,
        "File holding the GitHub token (as a mounted Kubernetes Secret is), instead of --gh-token.",
        Group.GITHUB,
        metavar="FILE",
        example="/var/run/secrets/atlas/gh-token",
    )
    gh_app_id: int | None = setting(
        None,
        "Run as this GitHub App (its App ID, on the App's settings page) instead of with --gh-token: atlas "
        "signs JWTs with --gh-app-key-file and acts with each installation's token.",
        Group.GITHUB,
        metavar="ID",
        example=123456,
        gt=0,
    )
    gh_app_key: SecretStr | None = setting(
        None,
        "The GitHub App's private key itself (the PEM GitHub generated), for secret stores that hand "
        "values over in the environment; else --gh-app-key-file.",
        Group.GITHUB,
        metavar="PEM",
    )
    gh_app_key_file: Path | None = setting(
        None,
        "File holding the GitHub App's private key (the .pem GitHub generated), instead of --gh-app-key.",
        Group.GITHUB,
        metavar="FILE",
        example="/var/run/secrets/atlas/gh-app.pem",
    )
    gh_app_slug: str | None = setting(
        None,
        "The GitHub App's slug (its URL name); atlas comments as SLUG[bot]. Read from GET /app when unset.",
        Group.GITHUB,
        metavar="SLUG",
        example="atlas-acme",
    )
    gh_app_installation_id: int | None = setting(
        None,
        "The App's installation to act as when a delivery names none and none is found for the repository "
        "(GET /repos/OWNER/NAME/installation); deliveries normally name theirs.",
        Group.GITHUB,
        metavar="ID",
        gt=0,
    )
    gh_checks: bool | None = setting(
        None,
        "Report each project's plan and apply as a GitHub check run (atlas/plan: DIR, with annotations, "
        "Re-run and an Apply button), beside the commit statuses. Needs a GitHub App; on by default with one.",
        Group.GITHUB,
        default_text="on with --gh-app-id, else off",
    )
    gh_webhook_secret: SecretStr | None = setting(
        None,
        "Secret of the GitHub webhook; atlas rejects deliveries whose signature does not match it. "
        "Without it anyone who can reach the server can send it events.",
        Group.GITHUB,
        metavar="SECRET",
        example="a-long-random-string",
    )
    gh_webhook_secret_file: Path | None = setting(
        None,
        "File holding the webhook secret, instead of --gh-webhook-secret.",
        Group.GITHUB,
        metavar="FILE",
        example="/var/run/secrets/atlas/gh-webhook-secret",
    )
    allow_unsigned_webhooks: bool = setting(
        False,
        "Start without --gh-webhook-secret and accept unsigned deliveries, for a local trial only: anyone "
        "who can reach the server can then send it events. Clones still go only to --gh-api-url's host.",
        Group.GITHUB,
    )
    gh_api_url: str = setting(
        "https://api.github.com",
        "GitHub API base URL; for GitHub Enterprise Server use https://HOST/api/v3.",
        Group.GITHUB,
        metavar="URL",
    )
    gh_user: str | None = setting(
        None,
        "GitHub login of the account atlas comments as, so that it ignores its own comments.",
        Group.GITHUB,
        metavar="LOGIN",
        example="atlas-bot",
    )
    # GitLab
    gitlab_token: SecretStr | None = setting(
        None,
        "GitLab token (personal, project or group access token with the api scope) atlas reads merge "
        "requests and posts notes and commit statuses with, and clones with. With it atlas serves GitLab, "
        "alone or beside GitHub.",
        Group.GITLAB,
        metavar="TOKEN",
        example="glpat-xxxxxxxxxxxxxxxxxxxx",
    )
    gitlab_token_file: Path | None = setting(
        None,
        "File holding the GitLab token, instead of --gitlab-token.",
        Group.GITLAB,
        metavar="FILE",
        example="/var/run/secrets/atlas/gitlab-token",
    )
    gitlab_webhook_secret: SecretStr | None = setting(
        None,
        "Secret token of the GitLab webhook; atlas rejects deliveries whose X-Gitlab-Token is not it.",
        Group.GITLAB,
        metavar="SECRET",
        example="a-long-random-string",
    )
    gitlab_webhook_secret_file: Path | None = setting(
        None,
        "File holding the GitLab webhook's secret token, instead of --gitlab-webhook-secret.",
        Group.GITLAB,
        metavar="FILE",
        example="/var/run/secrets/atlas/gitlab-webhook-secret",
    )
    gitlab_hostname: str = setting(
        DEFAULT_GITLAB_HOSTNAME,
        "The GitLab atlas serves: a host (gitlab.example.com, meaning https) or a URL with its scheme and port "
        "taken as it is (http://127.0.0.1:8080); the API is at HOST/api/v4.",
        Group.GITLAB,
        metavar="HOST",
    )
    gitlab_status_retry_enabled: bool = setting(
        False,
        "Retry a GitLab commit status that GitLab answers 409 Conflict (another write to the same pipeline's "
        "statuses in flight) up to 5 times with exponential backoff, instead of reporting the failed update.",
        Group.GITLAB,
    )
    gitlab_user: str | None = setting(
        None,
        "GitLab username of the token's user, whose notes atlas ignores; read from GET /user when unset.",
        Group.GITLAB,
        metavar="USERNAME",
        example="atlas-bot",
    )

    repo_allowlist: CommaList = setting(
        [],
        "Repositories atlas acts on: comma-separated globs over HOST/OWNER/NAME, such as "
        "github.com/acme/*; * allows every repository, and the empty default allows none. An entry "
        "starting with ! excludes what it matches, whatever else matches it (as in Atlantis): "
        "'github.com/acme/*,!github.com/acme/secrets'.",
        Group.GITHUB,
        metavar="GLOBS",
        example=["github.com/your-org/*"],
    )
    allow_draft_prs: bool = setting(
        False, "Plan draft pull requests too, instead of waiting until they are ready.", Group.GITHUB
    )
    disable_autoplan: bool = setting(
        False, "Never plan a pull request by itself on open or push: projects are planned only on a comment "
        "such as 'atlas plan'. Closing and merging still clean up.", Group.GITHUB
    )
    disable_autoplan_label: str | None = setting(
        None,
        "Do not plan a pull request by itself while it carries this label (it is still planned on a comment "
        "such as 'atlas plan'); with --disable-autoplan set, no pull request is autoplanned anyway.",
        Group.GITHUB,
        metavar="LABEL",
        example="no-autoplan",
    )
    emoji_reaction: Annotated[str, BeforeValidator(reaction_name)] = setting(
        "eyes",
        "The reaction atlas puts on each comment command it takes up: one of GitHub's reactions (+1, -1, laugh, "
        "confused, heart, hooray, rocket, eyes; thumbsup, thumbsdown and tada name +1, -1 and hooray), or none "
        "for no reaction. Atlantis's default is none; atlas's is eyes.",
        Group.GITHUB,
        metavar="REACTION",
    )
    comment_prefix: CommaList = setting(
        ["atlas"],
        "Words that address atlas at the start of a pull-request comment (as in 'atlas plan'); "
        "comma-separated.",
        Group.GITHUB,
        metavar="WORDS",
    )

    # Commands and locks
    allow_commands: CommaList = setting(
        ["plan", "apply", "unlock", "cancel", "approve_policies", "help", "version"],
        "Commands that exist on this server; others get a comment listing the allowed ones. "
        "help and version are always allowed.",
        Group.COMMANDS,
        metavar="COMMANDS",
    )
    allow_users: CommaList = setting(
        [],
        "GitHub logins (globs) allowed to run comment commands. With neither this nor "
        "--allow-teams set, anyone with write permission on the repository may.",
        Group.COMMANDS,
        metavar="LOGINS",
        example=["alice", "bob"],
    )
    allow_teams: CommaList = setting(
        [],
        "GitHub teams (ORG/TEAM-SLUG) whose members may run comment commands.",
        Group.COMMANDS,
        metavar="TEAMS",
        example=["acme/platform"],
    )
    gh_team_allowlist: CommaList = setting(
        [],
        "Which GitHub teams may run which comment commands, as Atlantis spells it: comma-separated TEAM:COMMAND "
        "pairs such as 'platform:plan, platform-leads:apply', with * for any team or any command. TEAM is a team "
        "slug in the repository owner's organisation, or ORG/SLUG. It applies on top of --allow-users and "
        "--allow-teams (or write permission): a user must pass both. Unset, it restricts nothing.",
        Group.COMMANDS,
        metavar="TEAM:COMMAND,...",
        example=["platform:plan", "platform-leads:apply"],
    )
    gitlab_group_allowlist: CommaList = setting(
        [],
        "Which GitLab groups may run which comment commands on GitLab projects, as Atlantis spells it: "
        "comma-separated GROUP:COMMAND pairs such as 'platform/infra:plan, platform/leads:apply', with * for any "
        "group or any command. GROUP is the group's full path (subgroups included); a user counts as a member "
        "when GitLab lists them among the group's members, inherited ones included. It applies on top of "
        "--allow-users (or Developer access): a user must pass both. Unset, it restricts nothing.",
        Group.COMMANDS,
        metavar="GROUP:COMMAND,...",
        example=["platform/infra:plan", "platform/leads:apply"],
    )
    allow_fork_prs: bool = setting(
        False,
        "Plan pull requests from forks. Off by default: planning runs the fork's code with the "
        "server's credentials.",
        Group.COMMANDS,
    )
    apply_requirements: CommaList = setting(
        [],
        "What must hold before apply: approved (approved by someone other than the author), "
        "mergeable (GitHub says it can merge), undiverged (the base branch has no commits the pull "
        "request lacks); comma-separated.",
        Group.COMMANDS,
        metavar="REQUIREMENTS",
        example=["approved", "mergeable"],
    )
    checkout_strategy: Literal["branch", "merge"] = setting(
        "branch",
        "branch plans the pull request's head as it is; merge plans the result of merging the head "
        "into the base branch, re-merging when the base moves.",
        Group.COMMANDS,
        metavar="STRATEGY",
    )
    automerge: bool = setting(
        False, "Merge the pull request once every one of its projects has been applied.", Group.COMMANDS
    )
    automerge_method: Literal["merge", "squash", "rebase"] | None = setting(
        None,
        "How --automerge (or a repo config's automerge) merges: merge, squash or rebase; unset, GitHub's "
        "default (a merge commit).",
        Group.COMMANDS,
        metavar="METHOD",
    )
    checkout_depth: int = setting(
        0,
        "With --checkout-strategy merge, how many commits of the head and base branches to fetch; 0 "
        "fetches their whole history. A merge base deeper than that makes atlas fetch the rest.",
        Group.COMMANDS,
        metavar="COMMITS",
        ge=0,
    )
    discard_approval_on_plan: bool = setting(
        False, "Dismiss a pull request's approving reviews whenever a new plan of it runs.", Group.COMMANDS
    )
    fail_on_pre_workflow_hook_error: bool = setting(
        False,
        "Stop a command when one of its pre-workflow hooks fails; otherwise the failure is reported "
        "(comment and hook status) and the command goes on, as Atlantis does.",
        Group.COMMANDS,
    )
    enable_policy_checks: bool = setting(
        False,
        "After every plan, judge each project's plan with repos.yaml's policy sets (Rego); a project whose "
        "policies fail cannot be applied until an owner comments 'atlas approve_policies'.",
        Group.COMMANDS,
    )
    quiet_policy_checks: bool = setting(
        False, "Comment on policy checks only when a project's policies fail (statuses are always set).",
        Group.COMMANDS,
    )
    disable_apply_all: bool = setting(
        False, "Refuse a bare 'atlas apply': applies must name a project with -d or -p.", Group.COMMANDS
    )
    disable_unlock_label: str | None = setting(
        None,
        "Refuse 'atlas unlock' on a pull request that carries this label, saying so in a comment (operators "
        "can still discard a lock from the lock pages or with 'atlas locks unlock').",
        Group.COMMANDS,
        metavar="LABEL",
        example="do-not-unlock",
    )
    enable_regexp_cmd: bool = setting(
        False,
        "Let a comment's -p take a regular expression (RE2 syntax, matched against the whole name) over the "
        "names of the projects in the repository's config, as in 'atlas plan -p staging-.*'. A repository's "
        "allowed_regexp_prefixes limits a regex that matches more than one project to those prefixes.",
        Group.COMMANDS,
    )
    silence_no_projects: bool = setting(
        False,
        "Say nothing on a pull request whose changes, or whose command's -d or -p, touch no project of its repo "
        "config (repositories whose config lists projects only): no comment, and the command does not run. "
        "For several servers sharing one repository, each with its own projects.",
        Group.COMMANDS,
    )
    silence_vcs_status_no_plans: bool = setting(
        False,
        "Set no atlas/plan status when a plan (or autoplan) finds no project to plan, instead of a successful "
        "'no Terraform projects changed'.",
        Group.COMMANDS,
    )
    pending_apply_status: bool = setting(
        False,
        "Keep the atlas/apply status pending while a pull request has planned changes that are not applied, and "
        "set it successful once every planned change is applied or a plan finds none; with branch protection "
        "requiring atlas/apply, a pull request cannot be merged before its changes are applied.",
        Group.COMMANDS,
    )
    silence_vcs_status_no_projects: bool = setting(
        False,
        "Set no commit status for any command (plan, apply) that finds no project to run on.",
        Group.COMMANDS,
    )
    hide_prev_plan_comments: bool = setting(
        False, "Hide (minimize) a pull request's earlier plan comments when it is planned again.", Group.COMMANDS
    )
    hide_unchanged_plan_comments: bool = setting(
        False,
        "Leave projects whose plan has no changes out of plan comments (the summary still counts them); "
        "a plan where no project changes posts no comment.",
        Group.COMMANDS,
    )
    max_comments_per_command: int = setting(
        100,
        "The most comments one command posts; longer output loses its beginning, and the last comment "
        "links to the job page with all of it. 0: no limit.",
        Group.COMMANDS,
        metavar="COUNT",
        ge=0,
    )
    markdown_template_overrides_dir: Path | None = setting(
        None,
        "Directory of comment templates (Jinja2) replacing atlas's built-in ones of the same name "
        "(plan.md.j2, apply.md.j2, ...); one that fails to render is logged and the built-in is used.",
        Group.COMMANDS,
        metavar="DIR",
        example="/etc/atlas/templates",
    )
    apply_on_merge: Annotated[ApplyOnMerge, BeforeValidator(apply_on_merge_words)] = setting(
        "false",
        "Apply when a pull request merges instead of from the open pull request (the GitOps order): "
        "true re-plans the merge commit and applies it when it matches the plan reviewed on the pull "
        "request; always applies even when it differs; only also refuses 'atlas apply' before merge; "
        "false applies from the pull request. The server-wide default; repos.yaml and repo configs "
        "may override it where allowed.",
        Group.COMMANDS,
        metavar="MODE",
    )
    allow_backend_config_args: bool = setting(
        False,
        "Let comment commands pass -backend-config to terraform after --. Off by default: it can "
        "point a plan at another state.",
        Group.COMMANDS,
    )
    var_file_allowlist: CommaList = setting(
        [],
        "Directories besides the repository that a comment's -var-file may name (comma-separated, "
        "absolute); by default only files inside the repository. They are also reachable, read-only, "
        "from the sandbox.",
        Group.COMMANDS,
        metavar="DIRS",
        example=["/etc/atlas/tfvars"],
    )

    repo_config: Path | None = setting(
        None,
        "Server-side repo config (repos.yaml): per-repository requirements, workflows, hooks and what "
        "repositories' own atlas.yaml/atlantis.yaml may override.",
        Group.COMMANDS,
        metavar="FILE",
        example="/etc/atlas/repos.yaml",
    )

    # Drift detection
    drift_schedule: str = setting(
        "0 * * * *",
        "Cron schedule (five fields or @daily-style, in UTC) of the drift checks of projects whose drift: block "
        "in repos.yaml or the repo config sets no schedule.",
        Group.DRIFT,
        metavar="CRON",
    )

    # Server
    port: int = setting(4141, "Port to listen on.", Group.SERVER, ge=1, le=65535)
    # Declared after `port`: its default is computed from the port.
    atlas_url: str = setting(
        "",
        "Public base URL of this server, used in links from comments and commit statuses.",
        Group.SERVER,
        metavar="URL",
        example="https://atlas.example.com",
        default_text="http://HOSTNAME:PORT",
    )
    data_dir: Path = setting(
        Path("~/.atlas"),
        "Directory for atlas's working copies, plans and database; created if missing.",
        Group.SERVER,
        metavar="DIR",
    )
    api_secret: SecretStr | None = setting(
        None,
        "Secret that requests to atlas's /api endpoints must carry; the API is disabled while unset.",
        Group.SERVER,
        metavar="SECRET",
        example="another-long-random-string",
    )
    api_secret_file: Path | None = setting(
        None,
        "File holding the API secret, instead of --api-secret.",
        Group.SERVER,
        metavar="FILE",
        example="/var/run/secrets/atlas/api-secret",
    )

    web_username: str | None = setting(
        None,
        "Username the web pages, /status and /metrics ask for (HTTP basic auth) when --web-password is set too. "
        "/events and /healthz never ask.",
        Group.SERVER,
        metavar="USER",
        example="operator",
    )
    web_password: SecretStr | None = setting(
        None,
        "Password of --web-username; serve atlas over TLS when you set it.",
        Group.SERVER,
        metavar="PASSWORD",
        example="a-long-random-password",
    )
    web_password_file: Path | None = setting(
        None,
        "File holding the web password, instead of --web-password.",
        Group.SERVER,
        metavar="FILE",
        example="/var/run/secrets/atlas/web-password",
    )
    job_log_retention_days: int = setting(
        30, "Days atlas keeps the output of finished jobs for their pages.", Group.SERVER, metavar="DAYS", ge=1
    )
    redis_url: SecretStr | None = setting(
        None,
        "Redis URL (redis://[:password@]host:port/db). Set, it switches the job queue to rq workers "
        "('atlas worker') and locks, state, plans and delivery de-duplication to Redis, so any number of "
        "web processes and workers share them.",
        Group.SERVER,
        metavar="URL",
        example="redis://localhost:6379/0",
    )
    redis_key_prefix: str = setting(
        "atlas:",
        "What every key atlas keeps in --redis-url starts with (state, locks, plans, the job queue, the GitHub "
        "write budget); atlas installations sharing one Redis need different prefixes.",
        Group.SERVER,
        metavar="PREFIX",
        min_length=1,
    )
    plans_s3_bucket: str | None = setting(
        None,
        "Keep saved plans in this S3 (or S3-compatible) bucket, so any worker can apply a plan another made; "
        "without it plans go to Redis with --redis-url, else to the data dir.",
        Group.SERVER,
        metavar="BUCKET",
        example="acme-atlas-plans",
    )
    plans_s3_prefix: str = setting("", "Key prefix for plans in --plans-s3-bucket.", Group.SERVER, metavar="PREFIX")
    plans_s3_region: str | None = setting(None, "Region of --plans-s3-bucket.", Group.SERVER, metavar="REGION")
    plans_s3_endpoint: str | None = setting(
        None, "Endpoint of an S3-compatible store (MinIO, Ceph, …) for --plans-s3-bucket.", Group.SERVER,
        metavar="URL",
    )
    web_workers: int = setting(
        1,
        "gunicorn worker processes for the web server; more than 1 needs --redis-url, since the embedded "
        "queue lives in its process.",
        Group.SERVER,
        metavar="N",
        ge=1,
    )

    max_connections_per_client: int = setting(
        256,
        "Open connections one client address may hold (of 1000 per web process); past it atlas closes that "
        "client's longest-waiting connection that has not sent a whole request, or refuses the new one with "
        "429. Behind a reverse proxy every connection comes from the proxy: raise it to 1000.",
        Group.SERVER,
        metavar="N",
        ge=1,
        le=1000,
    )

    # Terraform
    terraform_bin: str = setting(
        "terraform",
        "Terraform binary to run: a name looked up on PATH, or a path.",
        Group.TERRAFORM,
        metavar="PATH",
    )
    terraform_timeout: float = setting(
        3600.0,
        "Seconds one terraform command may run before atlas stops it.",
        Group.TERRAFORM,
        metavar="SECONDS",
        gt=0,
    )
    tf_bin_dir: Path | None = setting(
        None,
        "Directory of extra terraform binaries named terraform<version> (as Atlantis names them), "
        "terraform_<version> or <version>/terraform; a project's terraform version is looked up here first.",
        Group.TERRAFORM,
        metavar="DIR",
        default_text="<data-dir>/bin",
    )
    tf_download: bool = setting(
        True,
        "Download a terraform version a project asks for when no local binary matches it; with false such "
        "a project fails with a comment saying what to install.",
        Group.TERRAFORM,
    )
    tf_download_url: str = setting(
        "https://releases.hashicorp.com",
        "Release server terraform is downloaded from: HashiCorp's or a mirror with the same layout "
        "(/terraform/index.json, /terraform/<v>/terraform_<v>_<os>_<arch>.zip and terraform_<v>_SHA256SUMS).",
        Group.TERRAFORM,
        metavar="URL",
    )
    default_tf_version: str | None = setting(
        None,
        'Terraform version or constraint (such as 1.11.4 or "~> 1.11.0") for projects that do not ask for '
        "one; unset runs --terraform-bin.",
        Group.TERRAFORM,
        metavar="VERSION",
        example="1.11.4",
    )
    webhooks: Annotated[list[SlackWebhook | HttpWebhook], BeforeValidator(_webhooks)] = setting(
        [],
        "Notifications, as Atlantis's server config writes them: a list of {event, kind, channel or url, "
        "workspace-regex, branch-regex}; event apply (after each project's apply), drift (a drift check that "
        "found drift or failed) or remediation; kind slack (needs --slack-token) or http (a JSON POST, signed "
        "with X-Atlas-Signature-256 when the entry has a secret). In the config file a YAML list; as a flag or "
        "variable, JSON. See docs/notifications.md.",
        Group.SERVER,
        metavar="JSON",
        example=[{"event": "apply", "kind": "http", "url": "https://hooks.example.com/atlas"}],
    )
    slack_token: SecretStr | None = setting(
        None, "Slack bot token (xoxb-…) that webhooks of kind slack post with.", Group.SERVER, metavar="TOKEN",
        example="xoxb-xxxxxxxx",
    )
    slack_token_file: Path | None = setting(
        None, "File holding the Slack token, instead of --slack-token.", Group.SERVER, metavar="FILE",
        example="/var/run/secrets/atlas/slack-token",
    )
    slack_api_url: str = setting(
        "https://slack.com/api/", "Base URL of Slack's Web API (a Slack-compatible endpoint or proxy).",
        Group.SERVER, metavar="URL",
    )
    webhook_http_headers: Annotated[list[tuple[str, tuple[str, ...]]], BeforeValidator(_http_headers)] = setting(
        [],
        'Headers sent with every http webhook, as Atlantis takes them: a JSON object of names to a value or a '
        'list of values, such as {"Authorization": "Bearer …"}. Their values are kept out of logs.',
        Group.SERVER,
        metavar="JSON",
        example={"X-Team": "platform"},
    )
    tf_distribution: Annotated[Distribution, BeforeValidator(lower)] = setting(
        Distribution.TERRAFORM,
        "What projects run when their repo config names no terraform_distribution: terraform, or opentofu "
        "(OpenTofu's tofu: --tofu-bin, or the version a project asks for, from OpenTofu's releases). "
        "--default-tf-version names a version of this distribution. Also spelled --default-tf-distribution, "
        "as Atlantis now names it.",
        Group.TERRAFORM,
        metavar="DISTRIBUTION",
    )
    tofu_bin: str = setting(
        "tofu",
        "OpenTofu binary to run for opentofu projects that ask for no version: a name looked up on PATH, or a path.",
        Group.TERRAFORM,
        metavar="PATH",
    )
    tofu_download_url: str = setting(
        "https://github.com/opentofu/opentofu/releases/download",
        "Where OpenTofu versions are downloaded from: OpenTofu's GitHub releases or a mirror with their layout "
        "(v<v>/tofu_<v>_<os>_<arch>.zip and v<v>/tofu_<v>_SHA256SUMS, which every download is checked against).",
        Group.TERRAFORM,
        metavar="URL",
    )
    tofu_index_url: str = setting(
        "https://get.opentofu.org/tofu/api.json",
        "OpenTofu's list of releases (api.json, as get.opentofu.org serves it), read to find the newest version "
        "that meets a constraint.",
        Group.TERRAFORM,
        metavar="URL",
    )
    parallel_pool_size: int = setting(
        15, "How many terraform runs atlas executes at once.", Group.TERRAFORM, metavar="N", ge=1
    )

    # Sandbox
    sandbox: Annotated[SandboxMode, BeforeValidator(lower)] = setting(
        SandboxMode.AUTO,
        "Confine every process that runs pull-request code (terraform, run steps, hooks) with bubblewrap: "
        "its own PID namespace and /proc, only its working copy writable, the data dir and atlas's own "
        "files out of reach. auto uses the sandbox where the host allows it and otherwise starts with a "
        "loud warning; required refuses to start without it; off runs such code unconfined.",
        Group.SANDBOX,
        metavar="MODE",
    )
    sandbox_paths: CommaList = setting(
        [],
        "Host paths pull-request code may reach besides its working copy, comma-separated: PATH "
        "read-write, PATH:ro read-only (a local state directory on shared storage, a credentials file, a "
        "shared cache). A path that holds or lies in the data dir or atlas's config and key files is refused.",
        Group.SANDBOX,
        metavar="PATHS",
        example=["/srv/terraform-state", "/etc/atlas/aws-credentials:ro"],
    )

    # Logging
    log_level: Annotated[LogLevel, BeforeValidator(lower)] = setting(
        "info",
        "Least severe level logged: debug, info, warning or error.",
        Group.LOGGING,
        metavar="LEVEL",
    )
    log_format: Annotated[LogFormat, BeforeValidator(lower)] = setting(
        "text", "Log line format: text, or json (one object per line).", Group.LOGGING, metavar="FORMAT"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges flags, environment and file itself, so that an error can say
        # which of them a wrong value came from.
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        """A secret given as a file becomes the secret's value; giving both is a mistake."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for secret, file_setting in SECRET_FILES.items():
            path = data.get(file_setting)
            if path is None or path == "":
                continue
            if data.get(secret) not in (None, ""):
                raise ValueError(f"{file_setting}: give {flag_of(secret)} or {flag_of(file_setting)}, not both")
            data[secret] = read_secret_file(Path(str(path)).expanduser(), file_setting)
        return data

    @field_validator("sandbox_paths")
    @classmethod
    def _check_sandbox_paths(cls, entries: list[str]) -> list[str]:
        return [str(HostPath.parse(entry)) for entry in entries]

    @field_validator("var_file_allowlist")
    @classmethod
    def _check_var_file_allowlist(cls, entries: list[str]) -> list[str]:
        directories = []
        for entry in entries:
            path = Path(entry).expanduser()
            if not path.is_absolute():
                raise ValueError(f"{json.dumps(entry)} is not an absolute path")
            directories.append(os.path.normpath(path))
        return directories

    @field_validator("markdown_template_overrides_dir")
    @classmethod
    def _absolute_template_dir(cls, value: Path | None) -> Path | None:
        # Whether it exists is said at start-up (atlas.render.comments): a missing one leaves the built-ins.
        return value.expanduser().absolute() if value is not None else None

    @field_validator("gh_token_file", "gh_app_key_file", "gh_webhook_secret_file", "api_secret_file",
                     "web_password_file", "slack_token_file", "gitlab_token_file", "gitlab_webhook_secret_file")
    @classmethod
    def _absolute_secret_file(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None

    @field_validator("gh_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        value = http_url(value, "https://api.github.com or https://HOST/api/v3")
        git_host_url(value)
        return value

    @field_validator("gitlab_hostname")
    @classmethod
    def _check_gitlab_hostname(cls, value: str) -> str:
        try:
            gitlab_base_url(value)
        except HostnameError as error:
            raise ValueError(str(error)) from None
        return value.strip()

    @field_validator("tofu_download_url", "tofu_index_url")
    @classmethod
    def _check_tofu_urls(cls, value: str) -> str:
        return http_url(value, "https://github.com/opentofu/opentofu/releases/download")

    @field_validator("gh_team_allowlist", "gitlab_group_allowlist")
    @classmethod
    def _check_team_allowlist(cls, entries: list[str]) -> list[str]:
        return [str(right) for right in parse_team_rights(entries, KNOWN_COMMANDS)]

    @field_validator("tf_download_url")
    @classmethod
    def _check_download_url(cls, value: str) -> str:
        return http_url(value, "https://releases.hashicorp.com")

    @field_validator("drift_schedule")
    @classmethod
    def _check_drift_schedule(cls, value: str) -> str:
        from atlas.config.raw import cron_problem

        problem = cron_problem(value)
        if problem:
            raise ValueError(f"must be a cron schedule such as '0 * * * *': {problem}")
        return value.strip()

    @field_validator("default_tf_version")
    @classmethod
    def _check_default_tf_version(cls, value: str | None) -> str | None:
        if value:
            try:
                VersionConstraint.parse(value)
            except VersionSyntaxError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("atlas_url")
    @classmethod
    def _default_atlas_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return f"http://{socket.gethostname()}:{info.data.get('port', 4141)}"
        return http_url(value, "https://atlas.example.com")

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("repo_allowlist")
    @classmethod
    def _check_allowlist(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            glob = entry.removeprefix("!")
            if not glob:
                raise ValueError('entry "!" excludes nothing; write it like !github.com/acme/secrets')
            first, slashes = glob.split("/", 1)[0], glob.count("/")
            host_like = "." in first or ":" in first or first == "localhost" or any(c in first for c in "*?[")
            if glob != "*" and (slashes == 0 or (slashes == 1 and not host_like)):
                raise ValueError(
                    f"entry {json.dumps(glob)} is not a HOST/OWNER/NAME glob; "
                    f"write it like {entry[: len(entry) - len(glob)]}github.com/{glob.strip('/') or 'acme'}"
                    + ("/*" if slashes == 0 else "")
                )
        return entries

    @field_validator("allow_commands")
    @classmethod
    def _check_commands(cls, names: list[str]) -> list[str]:
        names = [name.strip().lower() for name in names]
        # Atlantis writes state_rm; approve_policies keeps its underscore in comments too.
        names = [name if name in KNOWN_COMMANDS else name.replace("_", " ") for name in names]
        unknown = [name for name in names if name not in KNOWN_COMMANDS]
        if unknown:
            raise ValueError(f"unknown command {json.dumps(unknown[0])}; known: {', '.join(KNOWN_COMMANDS)}")
        return names

    @field_validator("apply_requirements")
    @classmethod
    def _check_requirements(cls, names: list[str]) -> list[str]:
        names = [name.strip().lower() for name in names]
        unknown = [name for name in names if name not in REQUIREMENTS]
        if unknown:
            raise ValueError(
                f"unknown requirement {json.dumps(unknown[0])}; known: {', '.join(REQUIREMENTS)}"
            )
        return names

    @field_validator("comment_prefix")
    @classmethod
    def _check_prefixes(cls, words: list[str]) -> list[str]:
        if not words:
            raise ValueError("must name at least one word, such as atlas")
        for word in words:
            if any(c.isspace() for c in word):
                raise ValueError(f"each prefix must be one word, got {json.dumps(word)}")
        return words

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        if self.gh_app_id is not None and self.gh_app_key is None:
            raise ValueError("gh_app_id: --gh-app-id needs the App's private key: --gh-app-key-file or --gh-app-key")
        if self.gh_app_id is None:
            for name in ("gh_app_key", "gh_app_slug", "gh_app_installation_id"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: {flag_of(name)} needs --gh-app-id (the GitHub App's id)")
        if self.gh_app_id is not None and self.gh_token is not None:
            raise ValueError("gh_token: give either --gh-token or a GitHub App (--gh-app-id), not both")
        if self.gh_checks and self.gh_app_id is None:
            raise ValueError("gh_checks: --gh-checks needs a GitHub App (--gh-app-id): GitHub lets only Apps "
                             "create check runs")
        if (self.web_username is None) != (self.web_password is None):
            raise ValueError("web_username: --web-username and --web-password must be set together")
        if self.web_workers > 1 and self.redis_url is None:
            raise ValueError("web_workers: more than one web worker needs --redis-url (the embedded queue "
                             "lives in one process)")
        if self.sandbox is SandboxMode.OFF and self.sandbox_paths:
            raise ValueError("sandbox_paths: --sandbox-paths has no effect with --sandbox off; remove it, "
                             "or use --sandbox auto or required")
        slack = [webhook for webhook in self.webhooks if isinstance(webhook, SlackWebhook)]
        if slack and self.slack_token is None:
            raise ValueError(f"webhooks: webhooks[{slack[0].index}] is a slack webhook, which needs --slack-token "
                             "(ATLAS_SLACK_TOKEN), the Slack bot's token")
        return self

    def __eq__(self, other: object) -> bool:
        # Where a setting was given is not part of its value.
        return isinstance(other, Settings) and self.__dict__ == other.__dict__

    def source_of(self, name: str) -> Source | None:
        """Where the setting `name` was given (flag, env or file), or None when it has its default."""
        return self._sources.get(name)

    @property
    def config_file(self) -> Path | None:
        """The config file these settings were read from (`--config`, `ATLAS_CONFIG`), if any."""
        return self._config_file

    def secrets_given_as_flags(self) -> list[str]:
        """The flags of secrets given on the command line, which every user of the host can read."""
        return [flag_of(name) for name, field in type(self).model_fields.items()
                if is_secret(field) and self.source_of(name) == "flag"]

    def host_paths(self) -> list[HostPath]:
        """What the sandbox exposes besides the working copy: --sandbox-paths, then the var-file directories."""
        paths = [HostPath.parse(entry) for entry in self.sandbox_paths]
        named = {host.path for host in paths}
        paths += [HostPath(Path(entry), read_only=True) for entry in self.var_file_allowlist
                  if Path(entry) not in named and Path(entry).exists()]
        return paths

    def own_paths(self) -> list[Path]:
        """atlas's own files, which pull-request code must never reach: the data dir, config and key files."""
        paths = [self.data_dir]
        if self.config_file is not None:
            paths.append(self.config_file.expanduser().absolute())
        if self.repo_config is not None:
            paths.append(self.repo_config.expanduser().absolute())
        for file_setting in SECRET_FILES.values():
            path = getattr(self, file_setting)
            if path is not None:
                paths.append(path)
        return paths

    def secrets(self) -> list[str]:
        """The values of every secret setting that is set, to scrub from logs and child environments."""
        found: list[str] = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if not is_secret(field) or value is None or not value.get_secret_value():
                continue
            if name == "redis_url":
                # Only its password is secret; the rest of the URL is what an operator needs in the log.
                password = urlsplit(value.get_secret_value()).password
                if password:
                    found.append(password)
                continue
            found.append(value.get_secret_value())
        found += webhook_secrets(self.webhooks)
        found += [value for _, values in self.webhook_http_headers for value in values]
        return found

    @property
    def github_app_mode(self) -> bool:
        """Whether atlas acts as a GitHub App (`--gh-app-id`) rather than with `--gh-token`."""
        return self.gh_app_id is not None

    @property
    def checks_enabled(self) -> bool:
        """Whether projects get check runs: `--gh-checks`, on by default in App mode."""
        return self.github_app_mode if self.gh_checks is None else self.gh_checks

    @property
    def gh_git_url(self) -> str:
        """Where atlas clones repositories from: the git host of `--gh-api-url`, never a payload's URL."""
        return git_host_url(self.gh_api_url)

    def repo_id(self, full_name: str, vcs: VCSHost = VCSHost.GITHUB) -> str:
        """`HOST/OWNER/NAME` of a repository on the configured GitHub (or `HOST/GROUP/…/PROJECT` on the
        configured GitLab), as the allowlist and repos.yaml name it."""
        if vcs is VCSHost.GITLAB:
            return f"{gitlab_host(self.gitlab_hostname)}/{full_name}"
        return f"{urlsplit(self.gh_git_url).hostname}/{full_name}"

    def repo_key_of_id(self, repo_id: str) -> str | None:
        """The repository key (`models.repo_key`) of a repos.yaml id `HOST/PATH`: a project of the configured
        GitLab when HOST is its host, else the GitHub repository `OWNER/NAME`; None when it names neither."""
        host, _, path = repo_id.partition("/")
        if self.gitlab_enabled and host.lower() == gitlab_host(self.gitlab_hostname).lower() and path.count("/") >= 1:
            return repo_key(path, VCSHost.GITLAB)
        return repo_key(path) if path.count("/") == 1 else None

    @property
    def github_enabled(self) -> bool:
        """Whether atlas serves GitHub: a token or a GitHub App is configured."""
        return self.gh_token is not None or self.gh_app_id is not None

    @property
    def gitlab_enabled(self) -> bool:
        """Whether atlas serves GitLab: `--gitlab-token` is configured."""
        return self.gitlab_token is not None

    @property
    def gitlab_base_url(self) -> str:
        """The web root of `--gitlab-hostname` (clones go there, the API is under /api/v4)."""
        return gitlab_base_url(self.gitlab_hostname)

    def repo_allowed(self, repo_id: str) -> bool:
        """Whether `--repo-allowlist` allows the repository `HOST/OWNER/NAME` (case-insensitive): an entry
        matches it and no `!` entry does."""
        repo_id = repo_id.lower()
        included = any(fnmatch.fnmatchcase(repo_id, glob.lower()) for glob in self.repo_allowlist
                       if not glob.startswith("!"))
        return included and not any(fnmatch.fnmatchcase(repo_id, glob[1:].lower()) for glob in self.repo_allowlist
                                    if glob.startswith("!"))

    def team_rights(self, vcs: VCSHost = VCSHost.GITHUB) -> tuple[TeamRight, ...]:
        """The per-command rights for repositories on `vcs`: `--gh-team-allowlist` on GitHub,
        `--gitlab-group-allowlist` on GitLab (empty: they restrict nothing)."""
        entries = self.gitlab_group_allowlist if vcs is VCSHost.GITLAB else self.gh_team_allowlist
        return parse_team_rights(entries, KNOWN_COMMANDS)


def require_github_auth(settings: Settings, why: str) -> None:
    """SettingsError unless atlas has one way to act on a code host: a GitHub token or App, or a GitLab
    token (`why` needs it)."""
    if not settings.github_enabled and not settings.gitlab_enabled:
        raise SettingsError(
            f"GitHub credentials are required ({why}): give a token (--gh-token, ATLAS_GH_TOKEN, or "
            "--gh-token-file) or a GitHub App (--gh-app-id with --gh-app-key-file or --gh-app-key); "
            "or, to serve GitLab, a GitLab token (--gitlab-token, ATLAS_GITLAB_TOKEN, or --gitlab-token-file)"
        )


def require_webhook_secret(settings: Settings) -> None:
    """SettingsError unless deliveries of every host served are authenticated, or unsigned ones are
    explicitly allowed."""
    if settings.allow_unsigned_webhooks:
        return
    # GitLab alone: GitHub's secret is not asked for, and GitHub deliveries are refused.
    if settings.gh_webhook_secret is None and (settings.github_enabled or not settings.gitlab_enabled):
        raise SettingsError(
            "--gh-webhook-secret (ATLAS_GH_WEBHOOK_SECRET) is required: without it anyone who can reach the "
            "server can send it events. Set it (or --gh-webhook-secret-file) to the GitHub webhook's secret, or "
            "pass --allow-unsigned-webhooks for a local trial"
        )
    if settings.gitlab_enabled and settings.gitlab_webhook_secret is None:
        raise SettingsError(
            "--gitlab-webhook-secret (ATLAS_GITLAB_WEBHOOK_SECRET) is required with --gitlab-token: without it "
            "anyone who can reach the server can send it GitLab events. Set it (or --gitlab-webhook-secret-file) "
            "to the secret token of the GitLab webhook, or pass --allow-unsigned-webhooks for a local trial"
        )
