"""Every key and flag Atlantis documents, and what atlas does with each: the "nothing silently ignored" table.

Three places: `repo` (atlantis.yaml, version 3), `repos` (the server-side repos.yaml) and `server`
(Atlantis's `atlantis server` flags, which its config file takes as keys, plus that file's
`webhooks:` list). Key paths read `projects[].autoplan.when_modified`; `workflows.*.plan` is any
workflow's plan stage; `steps[].run.command` is a key of any step of any stage.

Each key has a status:
- `supported`: atlas does what Atlantis documents, under the same name (`atlas` names the setting or key);
- `equivalent`: atlas does it under another name (`atlas` names it);
- `planned`: built in this round; `reason` is Atlantis's documented behaviour, what atlas must do;
- `refused`: atlas refuses it; `reason` is the one line atlas gives.

`atlas` references read `setting:NAME` (a server setting), `repo:PATH` (an atlas.yaml key),
`repos:PATH` (a repos.yaml key) or `cli:FLAG` (a command-line flag only). This module imports
nothing from atlas: it is data, checked against atlas's loaders by tests/test_atlantis_keys_inventory.py,
and rendered into docs/atlantis-compatibility.md by `python -m atlas.config.atlantis_keys`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Where(StrEnum):
    REPO = "repo"
    """atlantis.yaml, version 3."""
    REPOS = "repos"
    """The server-side repos.yaml (`--repo-config`)."""
    SERVER = "server"
    """`atlantis server` flags and their config-file keys."""


class Status(StrEnum):
    SUPPORTED = "supported"
    EQUIVALENT = "equivalent"
    PLANNED = "planned"
    REFUSED = "refused"


@dataclass(frozen=True)
class AtlantisKey:
    where: Where
    name: str
    """As Atlantis spells it: a key path, or a flag without its dashes."""
    status: Status
    atlas: str = ""
    """The atlas setting or key that does it (supported, equivalent, or planned where atlas's name differs)."""
    reason: str = ""
    """Refused: why, as atlas says it. Planned: what Atlantis documents, which atlas must do. Else a note."""


S, E, P, R = Status.SUPPORTED, Status.EQUIVALENT, Status.PLANNED, Status.REFUSED
REPO, REPOS, SERVER = Where.REPO, Where.REPOS, Where.SERVER

NOT_GITHUB = "atlas serves GitHub (and GitLab); it does not support {vcs}"


def _workflow_keys(where: Where) -> tuple[AtlantisKey, ...]:
    """The keys of `workflows:`, the same in atlantis.yaml and repos.yaml."""
    prefix = "repo:" if where is REPO else "repos:"

    def ok(name: str, note: str = "") -> AtlantisKey:
        return AtlantisKey(where, name, S, prefix + name, note)

    built_in = ("init", "plan", "apply", "show", "import", "state_rm")
    return (
        ok("workflows"),
        ok("workflows.*.plan"),
        ok("workflows.*.apply"),
        ok("workflows.*.import"),
        ok("workflows.*.state_rm"),
        AtlantisKey(where, "workflows.*.policy_check", P, prefix + "workflows.*.policy_check",
                    "the steps run after each plan when policy checks are on (default: show, policy_check)"),
        ok("workflows.*.*.steps"),
        *(ok(f"steps[].{name}") for name in built_in),
        ok("steps[].*.extra_args", "extra arguments of a built-in step (init, plan, apply, show, import, state_rm)"),
        AtlantisKey(where, "steps[].policy_check", P, prefix + "steps[].policy_check",
                    "runs conftest against the plan's JSON with the policy sets of repos.yaml `policies`"),
        ok("steps[].run"),
        ok("steps[].run.command"),
        ok("steps[].run.shell"),
        ok("steps[].run.shellArgs"),
        ok("steps[].run.output", "show, hide or strip_refreshing"),
        AtlantisKey(where, "steps[].run.output.filter_regex", P, prefix + "steps[].run.output.filter_regex",
                    "each match of the regex in the step's output is replaced by <redacted> in the comment "
                    "(several apply in order; the job's full output is unfiltered)"),
        ok("steps[].env"),
        ok("steps[].env.name"),
        ok("steps[].env.value"),
        ok("steps[].env.command"),
        ok("steps[].env.shell"),
        ok("steps[].env.shellArgs"),
        ok("steps[].multienv"),
        ok("steps[].multienv.command"),
        ok("steps[].multienv.shell"),
        ok("steps[].multienv.shellArgs"),
        ok("steps[].multienv.output"),
    )


def _repo(name: str, status: Status = S, atlas: str = "", reason: str = "") -> AtlantisKey:
    return AtlantisKey(REPO, name, status, atlas or (f"repo:{name}" if status in (S, P) else ""), reason)


def _repos(name: str, status: Status = S, atlas: str = "", reason: str = "") -> AtlantisKey:
    return AtlantisKey(REPOS, name, status, atlas or (f"repos:{name}" if status in (S, P) else ""), reason)


def _flag(name: str, status: Status = S, atlas: str = "", reason: str = "") -> AtlantisKey:
    return AtlantisKey(SERVER, name, status, atlas or (f"setting:{name}" if status is S else ""), reason)


_DELETE_BRANCH = "after an automerge (or a merge atlas makes), delete the pull request's source branch"
_POLICY_CHECK = "run the policy sets of repos.yaml `policies` (conftest) after each plan; failing sets block apply"
_CUSTOM_POLICY = "allow policy tools other than conftest in custom policy_check workflows (their output is not parsed)"
_POLICIES = ("conftest policy sets run after each plan; failures need approval by their owners "
             "(`atlas approve_policies`) before apply")
_TEAM_AUTHZ = ("an external command decides, per command, whether a user (with their teams) may run it: "
               "exit 0 allows; `args` are passed to it")
_METRICS = "atlas exports Prometheus metrics at /metrics itself; statsd and the metrics block are not supported"
_HOOK = "a pre/post workflow hook key"
_GITLAB = "GitLab support (this round): "

REPO_KEYS: tuple[AtlantisKey, ...] = (
    _repo("version"),
    _repo("automerge", reason="overrides --automerge for the repository"),
    _repo("autodiscover"),
    _repo("autodiscover.mode"),
    _repo("autodiscover.ignore_paths"),
    _repo("delete_source_branch_on_merge", P, reason=_DELETE_BRANCH),
    _repo("parallel_plan"),
    _repo("parallel_apply"),
    _repo("abort_on_execution_order_fail"),
    _repo("allowed_regexp_prefixes", P,
          reason="with --enable-regexp-cmd, only `-p` regexes starting with one of these prefixes are allowed "
                 "(empty: any)"),
    _repo("emoji_reaction", P, reason="the emoji atlas reacts with on the comments it processes, for this repository"),
    _repo("repo_locks"),
    _repo("repo_locks.mode"),
    _repo("silence_pr_comments"),
    _repo("policies", P, reason="repo-level policy sets, merged with repos.yaml's: " + _POLICIES),
    _repo("projects"),
    _repo("projects[].name"),
    _repo("projects[].branch"),
    _repo("projects[].dir"),
    _repo("projects[].workspace"),
    _repo("projects[].execution_order_group"),
    _repo("projects[].delete_source_branch_on_merge", P, reason=_DELETE_BRANCH),
    _repo("projects[].repo_locking"),
    _repo("projects[].repo_locks"),
    _repo("projects[].repo_locks.mode"),
    _repo("projects[].custom_policy_check", P, reason=_CUSTOM_POLICY),
    _repo("projects[].policy_check", P, reason=_POLICY_CHECK),
    _repo("projects[].autoplan"),
    _repo("projects[].autoplan.enabled"),
    _repo("projects[].autoplan.when_modified"),
    _repo("projects[].terraform_version"),
    _repo("projects[].terraform_distribution", P,
          reason="terraform or opentofu: with opentofu the project runs `tofu` (a pinned version downloaded from "
                 "OpenTofu's releases, its SHA256SUMS checked), and comments name OpenTofu"),
    _repo("projects[].plan_requirements"),
    _repo("projects[].apply_requirements"),
    _repo("projects[].import_requirements"),
    _repo("projects[].silence_pr_comments"),
    _repo("projects[].depends_on"),
    _repo("projects[].workflow"),
    *_workflow_keys(REPO),
)

_S3 = ("bucket", "region", "prefix", "endpoint")
_S3_REFUSED = ("force_path_style", "profile", "server_side_encryption", "kms_key_id")

REPOS_KEYS: tuple[AtlantisKey, ...] = (
    _repos("repos"),
    _repos("repos[].id"),
    _repos("repos[].branch"),
    _repos("repos[].repo_config_file"),
    _repos("repos[].plan_requirements"),
    _repos("repos[].apply_requirements"),
    _repos("repos[].import_requirements"),
    _repos("repos[].workflow"),
    _repos("repos[].allowed_overrides"),
    _repos("repos[].allowed_workflows"),
    _repos("repos[].allow_custom_workflows"),
    _repos("repos[].delete_source_branch_on_merge", P, reason=_DELETE_BRANCH),
    _repos("repos[].repo_locking"),
    _repos("repos[].repo_locks"),
    _repos("repos[].repo_locks.mode"),
    _repos("repos[].policy_check", P, reason=_POLICY_CHECK),
    _repos("repos[].custom_policy_check", P, reason=_CUSTOM_POLICY),
    _repos("repos[].autodiscover"),
    _repos("repos[].autodiscover.mode"),
    _repos("repos[].autodiscover.ignore_paths"),
    _repos("repos[].silence_pr_comments"),
    *(
        _repos(f"repos[].{hooks}{key}", reason=_HOOK if key else "")
        for hooks in ("pre_workflow_hooks", "post_workflow_hooks")
        for key in ("", "[].run", "[].description", "[].shell", "[].shellArgs", "[].commands")
    ),
    *_workflow_keys(REPOS),
    _repos("policies", P, reason=_POLICIES),
    *(
        _repos(f"policies.{key}", P, reason=_POLICIES)
        for key in (
            "conftest_version", "owners", "owners.users", "owners.teams", "approve_count", "sticky_policy_approvals",
            "policy_item_regex", "policy_sets", "policy_sets[].name", "policy_sets[].path", "policy_sets[].source",
            "policy_sets[].owners", "policy_sets[].approve_count", "policy_sets[].prevent_self_approve",
            "policy_sets[].sticky_policy_approvals", "policy_sets[].policy_item_regex",
        )
    ),
    *(
        _repos(key, R, reason=_METRICS)
        for key in ("metrics", "metrics.statsd", "metrics.statsd.host", "metrics.statsd.port", "metrics.prometheus",
                    "metrics.prometheus.endpoint")
    ),
    _repos("team_authz", P, reason=_TEAM_AUTHZ),
    _repos("team_authz.command", P, reason=_TEAM_AUTHZ),
    _repos("team_authz.args", P, reason=_TEAM_AUTHZ),
    _repos("external_stores", E, "setting:plans-s3-bucket", "atlas keeps plans in S3 with --plans-s3-*"),
    _repos("external_stores.plan_store", E, "setting:plans-s3-bucket"),
    _repos("external_stores.plan_store.type", E, "setting:plans-s3-bucket", "s3 is the only type, as in Atlantis"),
    _repos("external_stores.plan_store.s3", E, "setting:plans-s3-bucket"),
    *(_repos(f"external_stores.plan_store.s3.{key}", E, f"setting:plans-s3-{key}") for key in _S3),
    *(
        _repos(f"external_stores.plan_store.s3.{key}", R,
               reason="not supported: atlas's S3 plan store takes bucket, region, prefix and endpoint "
                      "(--plans-s3-*), with credentials and encryption from the AWS SDK's own configuration")
        for key in _S3_REFUSED
    ),
    *(
        _repos(f"external_stores.log_store{key}", R,
               reason="not supported: atlas keeps job output in its store (SQLite or Redis) for "
                      "--job-log-retention-days")
        for key in ("", ".type", ".s3", *(f".s3.{name}" for name in (*_S3, *_S3_REFUSED)))
    ),
)

_SSL = "not supported: serve atlas behind a TLS-terminating reverse proxy (README: TLS and reverse proxies)"
_REDIS = "atlas takes one Redis URL (redis://[:password@]host:port/db, rediss:// for TLS)"

SERVER_KEYS: tuple[AtlantisKey, ...] = (
    _flag("allow-commands", reason="atlas's names: plan, apply, unlock, cancel, help, version, import, state rm; "
                                   "Atlantis's state, approve_policies, policy_check and all are refused by name"),
    _flag("allow-draft-prs"),
    _flag("allow-fork-prs"),
    _flag("api-secret"),
    _flag("atlantis-url", E, "setting:atlas-url"),
    _flag("autodiscover-mode", E, "repos:repos[].autodiscover.mode", "set it for id: /.*/ in repos.yaml"),
    _flag("automerge"),
    _flag("automerge-method", P, "setting:automerge-method",
          "merge, squash or rebase: the merge method of automerges (default: the VCS's)"),
    _flag("autoplan-file-list", E, "repo:projects[].autoplan.when_modified",
          "atlas's default when_modified is Atlantis's; a project's own list replaces it"),
    _flag("autoplan-modules", R, reason="not supported: list module paths in a project's autoplan.when_modified "
                                        "(such as ../modules/**/*.tf)"),
    _flag("autoplan-modules-from-projects", R, reason="not supported: list module paths in a project's "
                                                      "autoplan.when_modified (such as ../modules/**/*.tf)"),
    *(
        _flag(name, R, reason=NOT_GITHUB.format(vcs="Azure DevOps"))
        for name in ("azuredevops-hostname", "azuredevops-token", "azuredevops-user", "azuredevops-webhook-password",
                     "azuredevops-webhook-user")
    ),
    *(
        _flag(name, R, reason=NOT_GITHUB.format(vcs="Bitbucket"))
        for name in ("bitbucket-api-user", "bitbucket-base-url", "bitbucket-token", "bitbucket-user",
                     "bitbucket-webhook-secret")
    ),
    _flag("blocked-extra-args", R, reason="not supported: atlas decides which terraform flags a comment may pass "
                                          "(see --allow-backend-config-args)"),
    _flag("checkout-depth", P, "setting:checkout-depth",
          "with the merge checkout strategy, how many commits to fetch (0: all); branch clones are shallow"),
    _flag("checkout-strategy"),
    _flag("config", atlas="cli:--config"),
    _flag("data-dir"),
    _flag("default-tf-distribution", P, "setting:tf-distribution",
          "terraform or opentofu: the distribution of projects that name none"),
    _flag("default-tf-version"),
    _flag("disable-apply-all"),
    _flag("disable-automerge-label", R, reason="not supported: atlas has no label that turns automerge off"),
    _flag("disable-autoplan", P, "setting:disable-autoplan", "never plan automatically; only on `atlas plan`"),
    _flag("disable-autoplan-label", P, "setting:disable-autoplan-label",
          "do not autoplan pull requests that carry this label"),
    _flag("disable-global-apply-lock", R, reason="not supported: atlas's pages have no global apply lock to hide"),
    _flag("disable-markdown-folding", R, reason="not supported: atlas folds long output in comments always"),
    _flag("disable-repo-locking", E, "repos:repos[].repo_locks.mode", "repo_locks: {mode: disabled} for id: /.*/"),
    _flag("disable-unlock-label", P, "setting:disable-unlock-label",
          "refuse `atlas unlock` on a pull request that carries this label"),
    _flag("discard-approval-on-plan", P, "setting:discard-approval-on-plan",
          "dismiss the pull request's approvals when a new plan runs"),
    _flag("emoji-reaction", P, "setting:emoji-reaction",
          "react with this emoji to every comment command atlas processes (empty: none)"),
    _flag("enable-diff-markdown-format", R,
          reason="atlas always formats plans as diffs: remove the flag"),
    _flag("enable-drift-detection", E, "repos:repos[].drift.enabled",
          "atlas checks drift on a schedule (--drift-schedule) for projects with drift: enabled"),
    _flag("enable-drift-remediation", E, "repos:repos[].drift.remediate"),
    _flag("enable-external-stores", E, "setting:plans-s3-bucket"),
    _flag("enable-policy-checks", P, "setting:enable-policy-checks",
          "run the policy sets of repos.yaml `policies` after every plan"),
    _flag("enable-profiling-api", R, reason="not supported: atlas has no profiling endpoints"),
    _flag("enable-regexp-cmd", P, "setting:enable-regexp-cmd",
          "`-p` takes a regex over project names (limited by allowed_regexp_prefixes)"),
    _flag("executable-name", E, "setting:comment-prefix"),
    _flag("fail-on-pre-workflow-hook-error", P, "setting:fail-on-pre-workflow-hook-error",
          "a failing pre-workflow hook stops the command instead of being reported and passed"),
    _flag("gh-allow-mergeable-bypass-apply", R,
          reason="not supported: atlas's mergeable requirement reads GitHub's mergeable state as it is"),
    _flag("gh-app-id", P, "setting:gh-app-id", "authenticate as this GitHub App's installation"),
    _flag("gh-app-installation-id", P, "setting:gh-app-installation-id",
          "the installation to use when the App has several"),
    _flag("gh-app-key", P, "setting:gh-app-key", "the App's PEM private key"),
    _flag("gh-app-key-file", P, "setting:gh-app-key-file", "a file holding the App's PEM private key"),
    _flag("gh-app-slug", P, "setting:gh-app-slug",
          "the App's slug, to recognise its own comments (for hiding previous plans)"),
    _flag("gh-hostname", E, "setting:gh-api-url", "GitHub Enterprise: --gh-api-url https://HOST/api/v3"),
    _flag("gh-org", R, reason="not supported: atlas does not create GitHub Apps from its pages; create the App "
                              "on GitHub and pass its id and key"),
    _flag("gh-team-allowlist", P, "setting:gh-team-allowlist",
          "TEAM:COMMAND pairs (`*` for any team or command) that may run each command, with --allow-users"),
    _flag("gh-token"),
    _flag("gh-token-file", reason="read at start-up; Atlantis re-reads it to follow rotation"),
    _flag("gh-user"),
    _flag("gh-webhook-secret"),
    *(
        _flag(name, R, reason=NOT_GITHUB.format(vcs="Gitea"))
        for name in ("gitea-base-url", "gitea-page-size", "gitea-token", "gitea-user", "gitea-webhook-secret")
    ),
    _flag("gitlab-group-allowlist", P, "setting:gitlab-group-allowlist",
          _GITLAB + "GROUP:COMMAND pairs that may run each command"),
    _flag("gitlab-hostname", P, "setting:gitlab-hostname", _GITLAB + "the GitLab host (default gitlab.com)"),
    _flag("gitlab-status-retry-enabled", P, "setting:gitlab-status-retry-enabled",
          _GITLAB + "retry pipeline status updates with backoff"),
    _flag("gitlab-token", P, "setting:gitlab-token", _GITLAB + "the API user's token"),
    _flag("gitlab-user", P, "setting:gitlab-user", _GITLAB + "the API user's name"),
    _flag("gitlab-webhook-secret", P, "setting:gitlab-webhook-secret", _GITLAB + "the secret webhooks carry"),
    _flag("help", atlas="cli:--help"),
    _flag("hide-prev-plan-comments"),
    _flag("hide-unchanged-plan-comments", P, "setting:hide-unchanged-plan-comments",
          "do not comment the plans of projects without changes"),
    _flag("ignore-vcs-status-names", R, reason="not supported: atlas reads no other atlas server's statuses"),
    _flag("include-git-untracked-files", R,
          reason="not supported: atlas selects projects from the pull request's changed files"),
    _flag("language", R,
          reason="not supported: atlas comments in English (templates: --markdown-template-overrides-dir)"),
    _flag("language-config-file", R,
          reason="not supported: atlas comments in English (templates: --markdown-template-overrides-dir)"),
    _flag("locking-db-type", E, "setting:redis-url", "locks are in Redis with --redis-url, else in SQLite"),
    _flag("log-level", reason="atlas's levels: debug, info, warning, error (Atlantis's warn is refused by name)"),
    _flag("markdown-template-overrides-dir", P, "setting:markdown-template-overrides-dir",
          "templates in this directory replace the built-in comment templates of the same name"),
    _flag("max-comments-per-command", P, "setting:max-comments-per-command",
          "at most this many comments per command (default 100, 0: no limit); the output's beginning is cut"),
    _flag("parallel-apply", E, "repo:parallel_apply"),
    _flag("parallel-plan", E, "repo:parallel_plan"),
    _flag("parallel-pool-size"),
    _flag("pending-apply-status", P, "setting:pending-apply-status",
          _GITLAB + "keep the apply status pending while planned changes are unapplied"),
    _flag("port"),
    _flag("quiet-policy-checks", P, "setting:quiet-policy-checks",
          "comment policy check results only when a check fails with an error"),
    _flag("redis-cluster-addresses", R, reason="not supported: " + _REDIS),
    *(
        _flag(name, E, "setting:redis-url", _REDIS)
        for name in ("redis-db", "redis-host", "redis-insecure-skip-verify", "redis-password", "redis-port",
                     "redis-tls-enabled", "redis-username")
    ),
    _flag("repo-allowlist", reason="DEFECT: an entry starting with ! (Atlantis: excludes) is accepted and matches "
                                   "nothing, so it excludes nothing; it must exclude, or be refused"),
    _flag("repo-config"),
    _flag("repo-config-json", R, reason="not supported: write the repos.yaml to a file and pass --repo-config"),
    _flag("restrict-file-list", R, reason="not supported: atlas plans only projects the pull request changes, "
                                          "or names with -d/-p"),
    _flag("silence-allowlist-errors", R, reason="not supported: atlas ignores repositories outside the allowlist "
                                                "without commenting"),
    _flag("silence-fork-pr-errors", R, reason="not supported"),
    _flag("silence-no-projects", P, "setting:silence-no-projects",
          "say nothing on pull requests that change no configured project"),
    _flag("silence-vcs-status-no-plans", P, "setting:silence-vcs-status-no-plans",
          "set no commit status when autoplan finds nothing to plan"),
    _flag("silence-vcs-status-no-projects", P, "setting:silence-vcs-status-no-projects",
          "set no commit status for any command when the pull request changes no project"),
    _flag("skip-clone-no-changes", R, reason="not supported"),
    _flag("slack-token", P, "setting:slack-token", "the Slack bot token webhooks of kind slack post with"),
    _flag("ssl-cert-file", R, reason=_SSL),
    _flag("ssl-key-file", R, reason=_SSL),
    _flag("stats-namespace", R, reason=_METRICS),
    _flag("tf-distribution", P, "setting:tf-distribution",
          "deprecated name of --default-tf-distribution: terraform or opentofu"),
    _flag("tf-download"),
    _flag("tf-download-url"),
    *(
        _flag(name, R, reason="not supported: atlas runs terraform itself; give Terraform Cloud credentials "
                              "through terraform's own configuration")
        for name in ("tfe-hostname", "tfe-local-execution-mode", "tfe-token")
    ),
    _flag("use-tf-plugin-cache", R, reason="not supported: atlas always shares a provider cache, safely"),
    _flag("var-file-allowlist"),
    _flag("vcs-status-name", R, reason="not supported: atlas's commit statuses are named atlas/plan and atlas/apply"),
    _flag("web-basic-auth", E, "setting:web-password",
          "basic auth is on when --web-username and --web-password are set"),
    _flag("web-password"),
    _flag("web-username"),
    _flag("webhook-http-headers", P, "setting:webhook-http-headers",
          "a JSON object of headers (value or list of values) added to every http webhook"),
    _flag("websocket-check-origin", R, reason="not supported: atlas streams job output without websockets"),
    _flag("write-git-creds", R, reason="not supported: atlas never writes its token to disk; modules from private "
                                       "repositories need credentials of their own"),
    *(
        _flag(name, P, "setting:webhooks", reason)
        for name, reason in (
            ("webhooks", "a list of notifications sent after each apply (atlas.notify)"),
            ("webhooks[].event", "apply (atlas adds drift and remediation)"),
            ("webhooks[].kind", "slack or http"),
            ("webhooks[].channel", "the Slack channel of a slack webhook"),
            ("webhooks[].url", "where an http webhook POSTs its JSON"),
            ("webhooks[].workspace-regex", "send only for workspaces matching it"),
            ("webhooks[].branch-regex", "send only for base branches matching it"),
        )
    ),
)

KEYS: tuple[AtlantisKey, ...] = REPO_KEYS + REPOS_KEYS + SERVER_KEYS


def _bare(path: str) -> str:
    """A key path without list markers: `projects[].dir` and `projects.dir` name one key."""
    return path.replace("[]", "")


_UNREAD = {REPO: (Status.PLANNED, Status.REFUSED, Status.EQUIVALENT), REPOS: (Status.PLANNED, Status.REFUSED,
           Status.EQUIVALENT), SERVER: (Status.PLANNED, Status.REFUSED, Status.EQUIVALENT)}
"""Statuses of keys atlas's loaders refuse, naming them: planned (not built yet), refused, and Atlantis's
names of what atlas takes under another name (the message says which)."""

_REFUSED_BY_PATH: dict[tuple[Where, str], AtlantisKey] = {
    (key.where, _bare(key.name)): key for key in KEYS if key.status in _UNREAD[key.where]
}


def unread_key(where: Where, path: str) -> AtlantisKey | None:
    """The key at `path` (the table's notation) when atlas's loaders must refuse it; None for any other key.

    A loader calls this for a key it does not read, or (for planned and refused keys) before reading
    one, so that what atlas does not do is never accepted in silence.
    """
    return _REFUSED_BY_PATH.get((where, _bare(path)))


def refusal(key: AtlantisKey) -> str:
    """The one line atlas answers a planned, refused or renamed key with: what it does not take, and why."""
    name = f'"{key.name}"' if key.where is SERVER else key.name.rsplit(".", 1)[-1]
    reason = key.reason.removeprefix("not supported: ").removeprefix("not supported")
    if key.status is Status.PLANNED:
        return f"atlas does not support {name} yet" + (f": Atlantis documents it as: {reason}" if reason else "")
    if key.status is Status.EQUIVALENT:
        where = key.atlas.partition(":")[2]
        atlas = {"setting": f"--{where}", "repos": f"repos.yaml {where}", "repo": f"atlas.yaml {where}"}.get(
            key.atlas.partition(":")[0], where)
        return f"atlas does not read {name}: use {atlas}" + (f" ({reason})" if reason else "")
    return f"atlas does not support {name}" + (f": {reason}" if reason else "")


def table_path(location: Sequence[str | int]) -> str:
    """Where a value sits in a repo config or repos.yaml, in the table's notation.

    `("projects", 0, "dir")` → `projects[].dir`; `("workflows", "w", "plan")` → `workflows.*.plan`;
    `("workflows", "w", "plan", "steps", 2, "run", "shell")` → `steps[].run.shell`.
    """
    parts = list(location)
    if parts[:1] == ["workflows"] and len(parts) > 1:
        if len(parts) >= 5 and parts[3] == "steps":
            return "steps[]" + "".join(f".{part}" for part in parts[5:] if isinstance(part, str))
        stages = [str(part) for part in parts[2:] if isinstance(part, str)]
        if len(stages) >= 2:
            return "workflows.*.*." + ".".join(stages[1:])
        return "workflows.*" + "".join(f".{stage}" for stage in stages)
    text = ""
    for part in parts:
        text += "[]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text

_TITLES = {
    REPO: "Repo config (atlantis.yaml, version 3)",
    REPOS: "Server-side repo config (repos.yaml)",
    SERVER: "Server flags and config-file keys",
}


def render_markdown() -> str:
    """docs/atlantis-compatibility.md: every key, by place, with its status and atlas's name or reason."""
    lines = [
        "# Atlantis compatibility: every key and flag",
        "",
        "Every key Atlantis documents for atlantis.yaml (version 3), repos.yaml and `atlantis server`,",
        "with what atlas does with it: **supported** (same name, same effect), **equivalent** (atlas does",
        "it under the name shown), **planned** (being built; the text says what it will do, as Atlantis",
        "documents it) or **refused** (atlas says so, naming the key, with the reason shown). Nothing is",
        "accepted and ignored.",
        "",
        "Generated from atlas/config/atlantis_keys.py: `python -m atlas.config.atlantis_keys > "
        "docs/atlantis-compatibility.md`.",
    ]
    for where in Where:
        keys = [key for key in KEYS if key.where is where]
        counts = {status: sum(key.status is status for key in keys) for status in Status}
        lines += [
            "",
            f"## {_TITLES[where]}",
            "",
            ", ".join(f"{count} {status}" for status, count in counts.items()) + ".",
            "",
            "| Atlantis | status | atlas | notes |",
            "| --- | --- | --- | --- |",
        ]
        for key in keys:
            shown = f"--{key.name}" if where is SERVER and not key.name.startswith("webhooks") else key.name
            atlas = key.atlas.partition(":")[2] if key.atlas else ""
            if key.atlas.startswith("setting:"):
                atlas = f"--{atlas}"
            elif key.atlas.startswith("repos:"):
                atlas = f"repos.yaml {atlas}"
            elif key.atlas.startswith("repo:") and where is not REPO:
                atlas = f"atlas.yaml {atlas}"
            cells = [f"`{shown}`", key.status.value, f"`{atlas}`" if atlas else "", key.reason.replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
