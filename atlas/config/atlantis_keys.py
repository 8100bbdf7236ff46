"""Every key and flag Atlantis documents, and what atlas does with each: the "nothing silently ignored" table.

Three places: `repo` (atlantis.yaml, version 3), `repos` (the server-side repos.yaml) and `server`
(Atlantis's `atlantis server` flags, which its config file takes as keys, plus that file's
`webhooks:` list). Key paths read `projects[].autoplan.when_modified`; `workflows.*.plan` is any
workflow's plan stage; `steps[].run.command` is a key of any step of any stage.

Each key has a status:
- `supported`: atlas does what Atlantis documents, under the same name (`atlas` names the setting or key);
- `equivalent`: atlas does it under another name (`atlas` names it);
- `planned`: not built yet, and refused by name until it is; `reason` is Atlantis's documented behaviour;
- `refused`: atlas refuses it; `reason` is the one line atlas gives.

`atlas` references read `setting:NAME` (a server setting), `repo:PATH` (an atlas.yaml key),
`repos:PATH` (a repos.yaml key) or `cli:FLAG` (a command-line flag only). This module imports
nothing from atlas: it is data, checked against atlas's loaders by tests/test_atlantis_keys_inventory.py,
and rendered into docs/atlantis-compatibility.md by `python -m atlas.config.atlantis_keys`.

Over 500 lines on purpose: it is one table, a row per documented key, read top to bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    test: str = ""
    """Supported or equivalent: the test that shows the key's effect, as `tests/FILE.py::test_name`
    (SHOWN_BY gives it for keys whose row does not)."""


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
        AtlantisKey(where, "workflows.*.policy_check", S, prefix + "workflows.*.policy_check",
                    "the steps run after each plan when policy checks are on (default: show, policy_check)",
                    _POLICY_TEST),
        ok("workflows.*.*.steps"),
        *(ok(f"steps[].{name}") for name in built_in),
        ok("steps[].*.extra_args", "extra arguments of a built-in step (init, plan, apply, show, import, state_rm)"),
        AtlantisKey(where, "steps[].policy_check", S, prefix + "steps[].policy_check",
                    "judges the plan's JSON with the policy sets of repos.yaml `policies`, in-process (Rego); "
                    "extra_args may name --namespace NAME or --all-namespaces",
                    _POLICY_TEST),
        ok("steps[].run"),
        ok("steps[].run.command"),
        ok("steps[].run.shell"),
        ok("steps[].run.shellArgs"),
        ok("steps[].run.output", "show, hide or strip_refreshing"),
        AtlantisKey(where, "steps[].run.output.filter_regex", S, prefix + "steps[].run.output.filter_regex",
                    "each match of the regex in the step's output is replaced by <redacted> in the comment "
                    "(several apply in order; the job's full output is unfiltered)",
                    "tests/test_atlantis_flags_e2e.py::test_filter_regex_redacts_run_output_in_the_comment_and_the_job_log_keeps_it"),
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


def _repo(name: str, status: Status = S, atlas: str = "", reason: str = "", test: str = "") -> AtlantisKey:
    return AtlantisKey(REPO, name, status, atlas or (f"repo:{name}" if status in (S, P) else ""), reason, test)


def _repos(name: str, status: Status = S, atlas: str = "", reason: str = "", test: str = "") -> AtlantisKey:
    return AtlantisKey(REPOS, name, status, atlas or (f"repos:{name}" if status in (S, P) else ""), reason, test)


def _flag(name: str, status: Status = S, atlas: str = "", reason: str = "", test: str = "") -> AtlantisKey:
    return AtlantisKey(SERVER, name, status, atlas or (f"setting:{name}" if status is S else ""), reason, test)


_POLICY_TEST = ("tests/test_policy_checks_e2e.py::"
                "test_a_failing_policy_blocks_apply_until_an_owner_approves_and_the_author_cannot")
_DELETE_BRANCH = "after an automerge (or a merge atlas makes), delete the pull request's source branch"
_POLICY_CHECK = "run the policy sets of repos.yaml `policies` (conftest) after each plan; failing sets block apply"
_CUSTOM_POLICY = "allow policy tools other than conftest in custom policy_check workflows (their output is not parsed)"
_POLICIES = ("conftest policy sets run after each plan; failures need approval by their owners "
             "(`atlas approve_policies`) before apply")
_TEAM_AUTHZ = ("not supported: atlas runs no external authorisation command; say which teams may run which "
               "commands with --gh-team-allowlist (TEAM:COMMAND pairs such as platform:plan, platform-leads:apply), "
               "on top of --allow-users/--allow-teams")
_METRICS = "atlas exports Prometheus metrics at /metrics itself; statsd and the metrics block are not supported"
_HOOK = "a pre/post workflow hook key"
_FLAGS_E2E = "tests/test_atlantis_flags_e2e.py::"
_CONTROLS_E2E = "tests/test_atlantis_controls_e2e.py::"
_NOTIFY_E2E = "tests/test_notify_e2e.py::"
_NOTIFY_APPLY = _NOTIFY_E2E + "test_an_apply_sends_a_signed_webhook_and_a_slack_message"
_GITLAB_E2E = "tests/test_gitlab_e2e.py::"
_GITLAB_CONTROLS_E2E = "tests/test_gitlab_controls_e2e.py::"

REPO_KEYS: tuple[AtlantisKey, ...] = (
    _repo("version"),
    _repo("automerge", reason="overrides --automerge for the repository"),
    _repo("autodiscover"),
    _repo("autodiscover.mode"),
    _repo("autodiscover.ignore_paths"),
    _repo("delete_source_branch_on_merge", reason=_DELETE_BRANCH,
          test=_FLAGS_E2E + "test_automerge_method_squashes_and_delete_source_branch_on_merge_deletes_the_branch"),
    _repo("parallel_plan"),
    _repo("parallel_apply"),
    _repo("abort_on_execution_order_fail"),
    _repo("allowed_regexp_prefixes",
          reason="with --enable-regexp-cmd, a `-p` regex that matches more than one project must start with one "
                 "of these prefixes (empty: any)",
          test=_CONTROLS_E2E
          + "test_allowed_regexp_prefixes_refuse_a_regex_that_matches_several_projects_outside_them"),
    _repo("emoji_reaction",
          reason="the reaction atlas adds to a comment command once it has read this config (the server's "
                 "--emoji-reaction goes on first, when the command is taken up); none adds none",
          test=_CONTROLS_E2E + "test_a_repository_emoji_reaction_is_added_once_atlas_has_read_its_config"),
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
    _repo("projects[].delete_source_branch_on_merge", reason=_DELETE_BRANCH,
          test=_FLAGS_E2E + "test_a_project_that_keeps_its_branch_overrides_repos_yaml_and_the_default_method_merges"),
    _repo("projects[].repo_locking"),
    _repo("projects[].repo_locks"),
    _repo("projects[].repo_locks.mode"),
    _repo("projects[].custom_policy_check", P, reason=_CUSTOM_POLICY),
    _repo("projects[].policy_check", P, reason=_POLICY_CHECK),
    _repo("projects[].autoplan"),
    _repo("projects[].autoplan.enabled"),
    _repo("projects[].autoplan.when_modified"),
    _repo("projects[].terraform_version"),
    _repo("projects[].terraform_distribution",
          test="tests/test_opentofu_e2e.py::test_a_project_asking_for_opentofu_is_planned_and_applied_with_tofu",
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
    _repos("repos[].delete_source_branch_on_merge", reason=_DELETE_BRANCH,
           test=_FLAGS_E2E + "test_repos_yaml_delete_source_branch_on_merge_deletes_after_automerge"),
    _repos("repos[].repo_locking"),
    _repos("repos[].repo_locks"),
    _repos("repos[].repo_locks.mode"),
    _repos("repos[].policy_check", reason=_POLICY_CHECK, test=_POLICY_TEST),
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
    _repos("policies", reason=_POLICIES, test=_POLICY_TEST),
    *(
        _repos(f"policies.{key}", reason=_POLICIES, test=_POLICY_TEST)
        for key in (
            "owners", "owners.users", "owners.teams", "approve_count", "policy_sets", "policy_sets[].name",
            "policy_sets[].path", "policy_sets[].source", "policy_sets[].owners", "policy_sets[].approve_count",
            "policy_sets[].prevent_self_approve",
        )
    ),
    _repos("policies.conftest_version", reason="accepted with a notice at start-up: atlas evaluates Rego "
           "in-process and downloads no conftest", test="tests/test_policy_sets.py::"
           "test_conftest_version_is_accepted_and_reported_as_not_used"),
    *(
        _repos(f"policies.{key}", P, reason=_POLICIES)
        for key in ("sticky_policy_approvals", "policy_item_regex", "policy_sets[].sticky_policy_approvals",
                    "policy_sets[].policy_item_regex")
    ),
    *(
        _repos(key, R, reason=_METRICS)
        for key in ("metrics", "metrics.statsd", "metrics.statsd.host", "metrics.statsd.port", "metrics.prometheus",
                    "metrics.prometheus.endpoint")
    ),
    _repos("team_authz", R, reason=_TEAM_AUTHZ),
    _repos("team_authz.command", R, reason=_TEAM_AUTHZ),
    _repos("team_authz.args", R, reason=_TEAM_AUTHZ),
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
                                   "approve_policies; Atlantis's state, policy_check and all are refused by name"),
    _flag("allow-draft-prs"),
    _flag("allow-fork-prs"),
    _flag("api-secret"),
    _flag("atlantis-url", S, "setting:atlas-url", "read under this name too (as --atlantis-url and in config.yaml)"),
    _flag("autodiscover-mode", E, "repos:repos[].autodiscover.mode", "set it for id: /.*/ in repos.yaml"),
    _flag("automerge"),
    _flag("automerge-method", S, "setting:automerge-method",
          "merge, squash or rebase: the merge method of automerges (default: the VCS's)",
          test=_FLAGS_E2E + "test_automerge_method_squashes_and_delete_source_branch_on_merge_deletes_the_branch"),
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
    _flag("checkout-depth", S, "setting:checkout-depth",
          "with the merge checkout strategy, how many commits to fetch (0: all); branch clones are shallow",
          test=_FLAGS_E2E + "test_checkout_depth_bounds_the_history_the_merge_strategy_fetches"),
    _flag("checkout-strategy"),
    _flag("config", atlas="cli:--config"),
    _flag("data-dir"),
    _flag("default-tf-distribution", S, "setting:tf-distribution",
          "terraform or opentofu: the distribution of projects that name none",
          test="tests/test_opentofu_e2e.py::test_the_server_default_distribution_runs_tofu_from_path"),
    _flag("default-tf-version"),
    _flag("disable-apply-all"),
    _flag("disable-automerge-label", R, reason="not supported: atlas has no label that turns automerge off"),
    _flag("disable-autoplan", S, "setting:disable-autoplan", "never plan automatically; only on `atlas plan`",
          test="tests/test_autoplan_e2e.py::test_disable_autoplan_plans_only_on_a_comment"),
    _flag("disable-autoplan-label", S, "setting:disable-autoplan-label",
          "do not autoplan pull requests that carry this label (a comment still plans them)",
          test=_CONTROLS_E2E + "test_a_pull_request_with_the_disable_autoplan_label_is_planned_only_on_a_comment"),
    _flag("disable-global-apply-lock", R, reason="not supported: atlas's pages have no global apply lock to hide"),
    _flag("disable-markdown-folding", R, reason="not supported: atlas folds long output in comments always"),
    _flag("disable-repo-locking", E, "repos:repos[].repo_locks.mode", "repo_locks: {mode: disabled} for id: /.*/"),
    _flag("disable-unlock-label", S, "setting:disable-unlock-label",
          "refuse `atlas unlock` on a pull request that carries this label, with a comment saying why",
          test=_CONTROLS_E2E + "test_the_disable_unlock_label_refuses_unlock_by_comment_and_keeps_the_locks"),
    _flag("discard-approval-on-plan", S, "setting:discard-approval-on-plan",
          "dismiss the pull request's approvals when a new plan runs",
          test=_FLAGS_E2E + "test_discard_approval_on_plan_dismisses_approvals_when_a_new_plan_runs"),
    _flag("emoji-reaction", S, "setting:emoji-reaction",
          "the reaction atlas puts on every comment command it takes up; none for none (atlas's default is eyes, "
          "Atlantis's none)",
          test=_CONTROLS_E2E + "test_emoji_reaction_marks_each_comment_command_and_none_puts_no_reaction"),
    _flag("enable-diff-markdown-format", R,
          reason="atlas always formats plans as diffs: remove the flag"),
    _flag("enable-drift-detection", E, "repos:repos[].drift.enabled",
          "atlas checks drift on a schedule (--drift-schedule) for projects with drift: enabled"),
    _flag("enable-drift-remediation", E, "repos:repos[].drift.remediate"),
    _flag("enable-external-stores", E, "setting:plans-s3-bucket"),
    _flag("enable-policy-checks", reason="run the policy sets of repos.yaml `policies` after every plan",
          test=_POLICY_TEST),
    _flag("enable-profiling-api", R, reason="not supported: atlas has no profiling endpoints"),
    _flag("enable-regexp-cmd", S, "setting:enable-regexp-cmd",
          "`-p` takes a regex over whole project names (limited by allowed_regexp_prefixes); with "
          "--disable-apply-all, an apply's regex must name one project",
          test=_CONTROLS_E2E
          + "test_enable_regexp_cmd_plans_every_project_whose_name_matches_and_without_it_p_is_a_name"),
    _flag("executable-name", S, "setting:comment-prefix",
          "read under this name too (as --executable-name and in config.yaml)"),
    _flag("fail-on-pre-workflow-hook-error", S, "setting:fail-on-pre-workflow-hook-error",
          "a failing pre-workflow hook stops the command instead of being reported and passed",
          test=_FLAGS_E2E + "test_fail_on_pre_workflow_hook_error_stops_the_command_at_the_failing_hook"),
    _flag("gh-allow-mergeable-bypass-apply", R,
          reason="not supported: atlas's mergeable requirement reads GitHub's mergeable state as it is"),
    _flag("gh-app-id", S, "setting:gh-app-id", "act as this GitHub App, with each installation's token",
          test="tests/test_github_app_e2e.py::test_a_pull_request_is_planned_as_the_app_with_an_installation_token_for_the_api_and_git"),
    _flag("gh-app-installation-id", S, "setting:gh-app-installation-id",
          "the installation for a repository GitHub names none for (deliveries name theirs)",
          test="tests/test_github_app_settings.py::test_the_app_is_configured_by_flag_env_or_config_file_and_its_key_file_is_read"),
    _flag("gh-app-key", S, "setting:gh-app-key", "the App's PEM private key",
          test="tests/test_github_app_settings.py::test_a_key_that_does_not_parse_is_one_line_without_the_key"),
    _flag("gh-app-key-file", S, "setting:gh-app-key-file", "a file holding the App's PEM private key",
          test="tests/test_github_app_settings.py::test_the_app_is_configured_by_flag_env_or_config_file_and_its_key_file_is_read"),
    _flag("gh-app-slug", S, "setting:gh-app-slug",
          "the App's slug: atlas comments as SLUG[bot] and ignores its own comments (else read from GET /app)",
          test="tests/test_github_app_e2e.py::test_the_apps_own_comments_are_ignored_by_its_bot_login"),
    _flag("gh-hostname", E, "setting:gh-api-url", "GitHub Enterprise: --gh-api-url https://HOST/api/v3"),
    _flag("gh-org", R, reason="not supported: atlas does not create GitHub Apps from its pages; create the App "
                              "on GitHub and pass its id and key"),
    _flag("gh-team-allowlist", S, "setting:gh-team-allowlist",
          "TEAM:COMMAND pairs (`*` for any team or command) that may run each command, with --allow-users",
          test="tests/test_team_rights_e2e.py::test_a_team_that_may_plan_but_not_apply_is_refused_apply_with_the_reason"),
    _flag("gh-token"),
    _flag("gh-token-file", reason="read at start-up; Atlantis re-reads it to follow rotation"),
    _flag("gh-user"),
    _flag("gh-webhook-secret"),
    *(
        _flag(name, R, reason=NOT_GITHUB.format(vcs="Gitea"))
        for name in ("gitea-base-url", "gitea-page-size", "gitea-token", "gitea-user", "gitea-webhook-secret")
    ),
    _flag("gitlab-group-allowlist", S, "setting:gitlab-group-allowlist",
          "GROUP:COMMAND pairs (groups by full path, `*` for any group or command) that may run each command on "
          "GitLab projects, with --allow-users; an unknown or unreadable group counts no one (Atlantis skips it)",
          test=_GITLAB_CONTROLS_E2E + "test_a_group_that_may_plan_but_not_apply_is_refused_apply_with_the_reason"),
    _flag("gitlab-hostname", S, "setting:gitlab-hostname",
          "the GitLab host (default gitlab.com; a bare host is https, a URL with scheme and port is taken as it is)",
          test=_GITLAB_E2E + "test_an_opened_merge_request_gets_a_plan_note_and_statuses_with_gitlab_settings_alone"),
    _flag("gitlab-status-retry-enabled", S, "setting:gitlab-status-retry-enabled",
          "a status GitLab answers 409 Conflict is retried up to 5 times with exponential backoff",
          test=_GITLAB_CONTROLS_E2E + "test_a_status_gitlab_answers_409_is_retried_with_gitlab_status_retry_enabled"),
    _flag("gitlab-token", S, "setting:gitlab-token",
          "the API user's token, for the API and for git (an oauth2 header, never in a URL); or --gitlab-token-file",
          test=_GITLAB_E2E + "test_an_opened_merge_request_gets_a_plan_note_and_statuses_with_gitlab_settings_alone"),
    _flag("gitlab-user", S, "setting:gitlab-user", "the API user's name, whose notes atlas ignores (else GET /user)",
          test=_GITLAB_E2E + "test_atlas_ignores_its_own_notes_and_answers_others"),
    _flag("gitlab-webhook-secret", S, "setting:gitlab-webhook-secret",
          "the secret token GitLab sends in X-Gitlab-Token, compared in constant time (401 otherwise)",
          test=_GITLAB_E2E + "test_a_delivery_with_a_wrong_or_missing_gitlab_token_is_refused_with_401"),
    _flag("help", atlas="cli:--help"),
    _flag("hide-prev-plan-comments"),
    _flag("hide-unchanged-plan-comments", S, "setting:hide-unchanged-plan-comments",
          "do not comment the plans of projects without changes",
          test=_FLAGS_E2E + "test_hide_unchanged_plan_comments_leaves_out_projects_without_changes"),
    _flag("ignore-vcs-status-names", R, reason="not supported: atlas reads no other atlas server's statuses"),
    _flag("include-git-untracked-files", R,
          reason="not supported: atlas selects projects from the pull request's changed files"),
    _flag("language", R,
          reason="not supported: atlas comments in English (templates: --markdown-template-overrides-dir)"),
    _flag("language-config-file", R,
          reason="not supported: atlas comments in English (templates: --markdown-template-overrides-dir)"),
    _flag("locking-db-type", E, "setting:redis-url", "locks are in Redis with --redis-url, else in SQLite"),
    _flag("log-level", reason="atlas's levels: debug, info, warning, error (Atlantis's warn is refused by name)"),
    _flag("markdown-template-overrides-dir", S, "setting:markdown-template-overrides-dir",
          "templates in this directory replace the built-in comment templates of the same name",
          test=_FLAGS_E2E + "test_markdown_template_overrides_replace_built_ins_and_a_broken_one_falls_back"),
    _flag("max-comments-per-command", S, "setting:max-comments-per-command",
          "at most this many comments per command (default 100, 0: no limit); the output's beginning is cut",
          test=_FLAGS_E2E + "test_max_comments_per_command_keeps_the_end_and_links_the_whole_output"),
    _flag("parallel-apply", E, "repo:parallel_apply"),
    _flag("parallel-plan", E, "repo:parallel_plan"),
    _flag("parallel-pool-size"),
    _flag("pending-apply-status", S, "setting:pending-apply-status",
          "atlas/apply stays pending while planned changes are unapplied, and succeeds when none are left; on "
          "GitHub too, where Atlantis supports it on GitLab only",
          test=_FLAGS_E2E
          + "test_pending_apply_status_keeps_atlas_apply_pending_until_every_planned_change_is_applied"),
    _flag("port"),
    _flag("quiet-policy-checks", reason="comment policy check results only when a project's policies fail",
          test="tests/test_policy_checks_e2e.py::test_warnings_do_not_block_and_quiet_checks_comment_only_on_failures"),
    _flag("redis-cluster-addresses", R, reason="not supported: " + _REDIS),
    *(
        _flag(name, E, "setting:redis-url", _REDIS)
        for name in ("redis-db", "redis-host", "redis-insecure-skip-verify", "redis-password", "redis-port",
                     "redis-tls-enabled", "redis-username")
    ),
    _flag("repo-allowlist", reason="an entry starting with ! excludes what it matches, as in Atlantis"),
    _flag("repo-config"),
    _flag("repo-config-json", R, reason="not supported: write the repos.yaml to a file and pass --repo-config"),
    _flag("restrict-file-list", R, reason="not supported: atlas plans only projects the pull request changes, "
                                          "or names with -d/-p"),
    _flag("silence-allowlist-errors", R, reason="not supported: atlas ignores repositories outside the allowlist "
                                                "without commenting"),
    _flag("silence-fork-pr-errors", R, reason="not supported"),
    _flag("silence-no-projects", S, "setting:silence-no-projects",
          "say nothing, and run nothing, for changes or a -d/-p that no project of the repo config covers "
          "(repositories whose config lists projects)",
          test=_CONTROLS_E2E + "test_silence_no_projects_runs_and_says_nothing_for_what_no_configured_project_covers"),
    _flag("silence-vcs-status-no-plans", S, "setting:silence-vcs-status-no-plans",
          "set no atlas/plan status when a plan finds no project to plan",
          test=_CONTROLS_E2E + "test_silence_vcs_status_flags_set_no_status_when_there_is_no_project"),
    _flag("silence-vcs-status-no-projects", S, "setting:silence-vcs-status-no-projects",
          "set no commit status for any command that finds no project to run on",
          test=_CONTROLS_E2E + "test_silence_vcs_status_flags_set_no_status_when_there_is_no_project"),
    _flag("skip-clone-no-changes", R, reason="not supported"),
    _flag("slack-token", S, "setting:slack-token", "the Slack bot token webhooks of kind slack post with",
          test=_NOTIFY_E2E + "test_an_apply_sends_a_signed_webhook_and_a_slack_message"),
    _flag("ssl-cert-file", R, reason=_SSL),
    _flag("ssl-key-file", R, reason=_SSL),
    _flag("stats-namespace", R, reason=_METRICS),
    _flag("tf-distribution", S, "setting:tf-distribution",
          "deprecated name of --default-tf-distribution: terraform or opentofu",
          test="tests/test_opentofu_e2e.py::test_both_atlantis_names_of_the_distribution_setting_are_accepted"),
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
    _flag("webhook-http-headers", S, "setting:webhook-http-headers",
          "a JSON object of headers (value or list of values) added to every http webhook",
          test=_NOTIFY_E2E + "test_an_apply_sends_a_signed_webhook_and_a_slack_message"),
    _flag("websocket-check-origin", R, reason="not supported: atlas streams job output without websockets"),
    _flag("write-git-creds", R, reason="not supported: atlas never writes its token to disk; modules from private "
                                       "repositories need credentials of their own"),
    *(
        _flag(name, S, "setting:webhooks", reason, test=_NOTIFY_APPLY)
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



SHOWN_BY: dict[str, str] = {
    "repo:version": "test_repo_config_e2e.py::test_project_terraform_version_is_downloaded_verified_and_used",
    "repo:automerge": "test_commands_e2e.py::test_automerge_merges_once_every_project_is_applied",
    "repo:autodiscover": "test_project_selection.py::test_autodiscover_modes",
    "repo:autodiscover.mode": "test_project_selection.py::test_autodiscover_modes",
    "repo:autodiscover.ignore_paths": "test_project_selection.py::test_autodiscover_modes",
    "repo:delete_source_branch_on_merge":
        "test_atlantis_flags_e2e.py::test_repos_yaml_delete_source_branch_on_merge_deletes_after_automerge",
    "repo:parallel_plan":
        "test_repo_config_e2e.py::test_parallel_plan_and_apply_run_a_pull_requests_projects_at_once_or_in_turn",
    "repo:parallel_apply":
        "test_repo_config_e2e.py::test_parallel_plan_and_apply_run_a_pull_requests_projects_at_once_or_in_turn",
    "repo:abort_on_execution_order_fail":
        "test_repo_config_e2e.py::test_execution_order_groups_apply_in_order_and_abort_on_failure",
    "repo:repo_locks": "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repo:repo_locks.mode":
        "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repo:silence_pr_comments":
        "test_repo_config_e2e.py::test_silence_pr_comments_plans_without_a_comment_but_with_its_status",
    "repo:projects": "test_repo_config_e2e.py::test_atlantis_yaml_unchanged_selects_projects_by_when_modified",
    "repo:projects[].name": "test_repo_config_e2e.py::test_depends_on_makes_apply_wait_for_the_named_project",
    "repo:projects[].branch":
        "test_atlantis_flags_e2e.py::test_automerge_method_squashes_and_delete_source_branch_on_merge_deletes_the_branch",
    "repo:projects[].dir": "test_repo_config_e2e.py::test_an_absolute_project_dir_is_refused_with_the_reason",
    "repo:projects[].workspace": "test_steps.py::test_plan_adds_the_workspaces_tfvars_file_when_there_is_one",
    "repo:projects[].execution_order_group":
        "test_repo_config_e2e.py::test_execution_order_groups_apply_in_order_and_abort_on_failure",
    "repo:projects[].delete_source_branch_on_merge":
        "test_atlantis_flags_e2e.py::test_repos_yaml_delete_source_branch_on_merge_deletes_after_automerge",
    "repo:projects[].repo_locking": "test_server_config.py::test_repo_locking_false_turns_repo_locks_off",
    "repo:projects[].repo_locks": "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repo:projects[].repo_locks.mode":
        "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repo:projects[].autoplan": "test_project_selection.py::test_autoplan_disabled_projects_plan_only_when_asked",
    "repo:projects[].autoplan.enabled":
        "test_project_selection.py::test_autoplan_disabled_projects_plan_only_when_asked",
    "repo:projects[].autoplan.when_modified":
        "test_project_selection.py::test_a_module_change_plans_the_projects_whose_when_modified_reaches_it",
    "repo:projects[].terraform_version":
        "test_repo_config_e2e.py::test_project_terraform_version_is_downloaded_verified_and_used",
    "repo:projects[].plan_requirements":
        "test_repo_config_e2e.py::test_plan_requirements_refuse_a_plan_until_they_are_met",
    "repo:projects[].apply_requirements":
        "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repo:projects[].import_requirements":
        "test_repo_config_e2e.py::test_import_requirements_refuse_an_import_until_they_are_met",
    "repo:projects[].silence_pr_comments":
        "test_repo_config_e2e.py::test_silence_pr_comments_plans_without_a_comment_but_with_its_status",
    "repo:projects[].depends_on": "test_repo_config_e2e.py::test_depends_on_makes_apply_wait_for_the_named_project",
    "repo:projects[].workflow": "test_repo_config_e2e.py::test_custom_workflow_is_refused_unless_the_server_allows_it",
    "repo:workflows": "test_server_config.py::test_a_repo_defined_workflow_needs_allow_custom_workflows",
    "repo:workflows.*.plan": "test_repo_config_e2e.py::test_import_and_state_rm_run_and_discard_the_plan",
    "repo:workflows.*.apply": "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repo:workflows.*.import": "test_repo_config_e2e.py::test_import_is_off_unless_allowed",
    "repo:workflows.*.state_rm": "test_steps.py::test_state_rm_forgets_a_resource_so_the_next_plan_creates_it_again",
    "repo:workflows.*.*.steps": "test_repo_config.py::test_a_stage_a_workflow_omits_keeps_the_default_steps",
    "repo:steps[].init": "test_steps.py::test_init_downloads_a_module_over_git_inside_the_sandbox",
    "repo:steps[].plan": "test_repo_config_e2e.py::test_import_and_state_rm_run_and_discard_the_plan",
    "repo:steps[].apply": "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repo:steps[].show": "test_steps.py::test_show_writes_the_plan_as_json_to_showfile_for_later_steps",
    "repo:steps[].import": "test_repo_config_e2e.py::test_import_is_off_unless_allowed",
    "repo:steps[].state_rm": "test_steps.py::test_state_rm_forgets_a_resource_so_the_next_plan_creates_it_again",
    "repo:steps[].*.extra_args": "test_steps.py::test_init_and_plan_take_extra_args_and_the_comments_flags",
    "repo:steps[].run": "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repo:steps[].run.command":
        "test_embedded_restart_e2e.py::test_a_server_killed_mid_plan_reports_the_running_command_and_runs_the_queued_one_after_restart",
    "repo:steps[].run.shell": "test_repo_config.py::test_steps_in_every_documented_form_become_workflow_steps",
    "repo:steps[].run.shellArgs": "test_repo_config.py::test_steps_in_every_documented_form_become_workflow_steps",
    "repo:steps[].run.output":
        "test_atlantis_flags_e2e.py::test_max_comments_per_command_keeps_the_end_and_links_the_whole_output",
    "repo:steps[].run.output.filter_regex":
        "test_atlantis_flags_e2e.py::test_a_filter_regex_that_does_not_compile_is_a_comment_naming_the_key",
    "repo:steps[].env": "test_steps.py::test_a_failing_env_command_fails_the_stage",
    "repo:steps[].env.name":
        "test_steps.py::test_env_steps_set_variables_for_later_run_steps_and_terraform",
    "repo:steps[].env.value":
        "test_steps.py::test_env_steps_set_variables_for_later_run_steps_and_terraform",
    "repo:steps[].env.command":
        "test_steps.py::test_env_steps_set_variables_for_later_run_steps_and_terraform",
    "repo:steps[].env.shell": "test_repo_config.py::test_steps_in_every_documented_form_become_workflow_steps",
    "repo:steps[].env.shellArgs": "test_repo_config.py::test_steps_in_every_documented_form_become_workflow_steps",
    "repo:steps[].multienv": "test_steps.py::test_multienv_sets_every_printed_variable_and_names_them_without_values",
    "repo:steps[].multienv.command":
        "test_embedded_restart_e2e.py::test_a_server_killed_mid_plan_reports_the_running_command_and_runs_the_queued_one_after_restart",
    "repo:steps[].multienv.shell": "test_repo_config.py::test_steps_in_every_documented_form_become_workflow_steps",
    "repo:steps[].multienv.shellArgs": "test_repo_config.py::test_steps_in_every_documented_form_become_workflow_steps",
    "repo:steps[].multienv.output":
        "test_atlantis_flags_e2e.py::test_max_comments_per_command_keeps_the_end_and_links_the_whole_output",
    "repos:repos": "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repos:repos[].id": "test_repo_config_e2e.py::test_repos_yaml_requirements_cannot_be_overridden_unless_allowed",
    "repos:repos[].branch":
        "test_atlantis_flags_e2e.py::test_automerge_method_squashes_and_delete_source_branch_on_merge_deletes_the_branch",
    "repos:repos[].repo_config_file":
        "test_repo_config_e2e.py::test_repos_yaml_repo_config_file_is_the_config_atlas_reads",
    "repos:repos[].plan_requirements":
        "test_repo_config_e2e.py::test_plan_requirements_refuse_a_plan_until_they_are_met",
    "repos:repos[].apply_requirements": "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repos:repos[].import_requirements":
        "test_repo_config_e2e.py::test_import_requirements_refuse_an_import_until_they_are_met",
    "repos:repos[].workflow": "test_repo_config_e2e.py::test_custom_workflow_is_refused_unless_the_server_allows_it",
    "repos:repos[].allowed_overrides": "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repos:repos[].allowed_workflows":
        "test_repo_config_e2e.py::test_repos_yaml_allowed_workflows_refuse_a_workflow_the_repository_may_not_choose",
    "repos:repos[].allow_custom_workflows":
        "test_server_config.py::test_a_repo_defined_workflow_needs_allow_custom_workflows",
    "repos:repos[].delete_source_branch_on_merge":
        "test_atlantis_flags_e2e.py::test_repos_yaml_delete_source_branch_on_merge_deletes_after_automerge",
    "repos:repos[].repo_locking": "test_server_config.py::test_repo_locking_false_turns_repo_locks_off",
    "repos:repos[].repo_locks": "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repos:repos[].repo_locks.mode":
        "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "repos:repos[].autodiscover": "test_project_selection.py::test_autodiscover_modes",
    "repos:repos[].autodiscover.mode": "test_project_selection.py::test_autodiscover_modes",
    "repos:repos[].autodiscover.ignore_paths":
        "test_server_config.py::test_atlantis_documented_example_repos_yaml_reads_unchanged_but_for_keys_not_built_yet",
    "repos:repos[].silence_pr_comments":
        "test_repo_config_e2e.py::test_silence_pr_comments_plans_without_a_comment_but_with_its_status",
    "repos:repos[].pre_workflow_hooks":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:repos[].pre_workflow_hooks[].run":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:repos[].pre_workflow_hooks[].description":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:repos[].pre_workflow_hooks[].shell":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:repos[].pre_workflow_hooks[].shellArgs":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:repos[].pre_workflow_hooks[].commands":
        "test_repo_config_e2e.py::test_workflow_hooks_with_commands_run_only_for_those_commands",
    "repos:repos[].post_workflow_hooks":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:repos[].post_workflow_hooks[].run":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:repos[].post_workflow_hooks[].description":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:repos[].post_workflow_hooks[].shell":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:repos[].post_workflow_hooks[].shellArgs":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:repos[].post_workflow_hooks[].commands":
        "test_repo_config_e2e.py::test_workflow_hooks_with_commands_run_only_for_those_commands",
    "repos:workflows": "test_server_config.py::test_a_repo_defined_workflow_needs_allow_custom_workflows",
    "repos:workflows.*.plan": "test_repo_config_e2e.py::test_import_and_state_rm_run_and_discard_the_plan",
    "repos:workflows.*.apply": "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repos:workflows.*.import": "test_repo_config_e2e.py::test_import_is_off_unless_allowed",
    "repos:workflows.*.state_rm": "test_steps.py::test_state_rm_forgets_a_resource_so_the_next_plan_creates_it_again",
    "repos:workflows.*.*.steps": "test_steps.py::test_show_writes_the_plan_as_json_to_showfile_for_later_steps",
    "repos:steps[].init": "test_steps.py::test_init_downloads_a_module_over_git_inside_the_sandbox",
    "repos:steps[].plan": "test_repo_config_e2e.py::test_import_and_state_rm_run_and_discard_the_plan",
    "repos:steps[].apply": "test_repo_config_e2e.py::test_server_apply_requirements_from_repos_yaml_hold",
    "repos:steps[].show": "test_steps.py::test_show_writes_the_plan_as_json_to_showfile_for_later_steps",
    "repos:steps[].import": "test_repo_config_e2e.py::test_import_is_off_unless_allowed",
    "repos:steps[].state_rm": "test_steps.py::test_state_rm_forgets_a_resource_so_the_next_plan_creates_it_again",
    "repos:steps[].*.extra_args": "test_steps.py::test_init_and_plan_take_extra_args_and_the_comments_flags",
    "repos:steps[].run":
        "test_repo_config_e2e.py::test_workflow_hooks_run_around_the_command_and_failures_are_reported",
    "repos:steps[].run.command":
        "test_embedded_restart_e2e.py::test_a_server_killed_mid_plan_reports_the_running_command_and_runs_the_queued_one_after_restart",
    "repos:steps[].run.shell":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:steps[].run.shellArgs":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:steps[].run.output":
        "test_atlantis_flags_e2e.py::test_max_comments_per_command_keeps_the_end_and_links_the_whole_output",
    "repos:steps[].run.output.filter_regex":
        "test_atlantis_flags_e2e.py::test_a_filter_regex_that_does_not_compile_is_a_comment_naming_the_key",
    "repos:steps[].env": "test_steps.py::test_a_failing_env_command_fails_the_stage",
    "repos:steps[].env.name":
        "test_steps.py::test_env_steps_set_variables_for_later_run_steps_and_terraform",
    "repos:steps[].env.value":
        "test_steps.py::test_env_steps_set_variables_for_later_run_steps_and_terraform",
    "repos:steps[].env.command":
        "test_steps.py::test_env_steps_set_variables_for_later_run_steps_and_terraform",
    "repos:steps[].env.shell":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:steps[].env.shellArgs":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:steps[].multienv": "test_steps.py::test_multienv_sets_every_printed_variable_and_names_them_without_values",
    "repos:steps[].multienv.command":
        "test_embedded_restart_e2e.py::test_a_server_killed_mid_plan_reports_the_running_command_and_runs_the_queued_one_after_restart",
    "repos:steps[].multienv.shell":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:steps[].multienv.shellArgs":
        "test_repo_config_e2e.py::test_shell_and_shell_args_choose_the_interpreter_of_run_steps_and_hooks",
    "repos:steps[].multienv.output":
        "test_atlantis_flags_e2e.py::test_max_comments_per_command_keeps_the_end_and_links_the_whole_output",
    "repos:external_stores": "test_artifacts.py::test_the_settings_choose_the_store",
    "repos:external_stores.plan_store": "test_artifacts.py::test_the_settings_choose_the_store",
    "repos:external_stores.plan_store.type": "test_scale_e2e.py::test_a_plan_made_on_one_worker_is_applied_by_another",
    "repos:external_stores.plan_store.s3": "test_artifacts.py::test_s3_store_names_the_bucket_it_cannot_use",
    "repos:external_stores.plan_store.s3.bucket": "test_artifacts.py::test_s3_store_names_the_bucket_it_cannot_use",
    "repos:external_stores.plan_store.s3.region": "test_artifacts.py::test_the_settings_choose_the_store",
    "repos:external_stores.plan_store.s3.prefix":
        "test_artifacts.py::test_s3_store_keeps_each_plan_with_its_metadata_beside_it",
    "repos:external_stores.plan_store.s3.endpoint": "test_artifacts.py::test_the_settings_choose_the_store",
    "server:allow-commands": "test_commands_e2e.py::test_disallowed_command_lists_the_allowed_ones",
    "server:allow-draft-prs": "test_events.py::test_reopen_and_push_trigger_autoplan",
    "server:allow-fork-prs": "test_commands_e2e.py::test_fork_pull_request_is_planned_when_allowed",
    "server:api-secret": "test_audit.py::test_the_audit_api_needs_the_api_secret",
    "server:atlantis-url":
        "test_deploy_files.py::test_the_ingress_serves_events_and_the_pages_at_the_atlas_url_behind_basic_auth",
    "server:autodiscover-mode": "test_project_selection.py::test_autodiscover_modes",
    "server:automerge": "test_commands_e2e.py::test_automerge_merges_once_every_project_is_applied",
    "server:automerge-method":
        "test_atlantis_flags_e2e.py::test_automerge_method_squashes_and_delete_source_branch_on_merge_deletes_the_branch",
    "server:autoplan-file-list":
        "test_project_selection.py::test_a_module_change_plans_the_projects_whose_when_modified_reaches_it",
    "server:checkout-depth":
        "test_atlantis_flags_e2e.py::test_checkout_depth_bounds_the_history_the_merge_strategy_fetches",
    "server:checkout-strategy": "test_commands_e2e.py::test_merge_checkout_strategy_plans_the_merge_result",
    "server:config":
        "test_drift_e2e.py::test_the_repo_config_turns_drift_detection_off_for_a_project_where_repos_yaml_allows_it",
    "server:data-dir": "test_settings.py::test_own_paths_are_the_data_dir_config_repos_yaml_and_secret_files",
    "server:default-tf-version": "test_tfversions.py::test_a_default_version_is_resolved_like_any_other",
    "server:disable-apply-all": "test_commands_e2e.py::test_disable_apply_all_asks_for_a_project",
    "server:disable-repo-locking":
        "test_repo_config_e2e.py::test_repo_locks_disabled_takes_no_lock",
    "server:discard-approval-on-plan":
        "test_atlantis_flags_e2e.py::test_discard_approval_on_plan_dismisses_approvals_when_a_new_plan_runs",
    "server:enable-drift-detection":
        "test_drift_e2e.py::test_drift_is_reported_in_one_issue_until_the_project_is_back_in_sync",
    "server:enable-drift-remediation":
        "test_drift_e2e.py::test_a_plan_that_destroys_is_remediated_only_with_remediate_destroy",
    "server:enable-external-stores": "test_artifacts.py::test_the_settings_choose_the_store",
    "server:executable-name": "test_commands_e2e.py::test_comment_prefix_can_include_atlantis",
    "server:fail-on-pre-workflow-hook-error":
        "test_atlantis_flags_e2e.py::test_fail_on_pre_workflow_hook_error_stops_the_command_at_the_failing_hook",
    "server:gh-hostname": "test_settings.py::test_an_api_url_without_a_known_git_host_is_refused",
    "server:gh-token": "test_settings.py::test_empty_values_leave_the_setting_unset",
    "server:gh-token-file": "test_settings.py::test_a_secret_and_its_file_together_are_refused",
    "server:gh-user": "test_commands_e2e.py::test_atlas_ignores_its_own_comments",
    "server:gh-webhook-secret": "test_autoplan_e2e.py::test_token_is_nowhere_on_disk_or_in_logs_after_a_run",
    "server:help": "test_commands_e2e.py::test_help_answers_with_usage",
    "server:hide-prev-plan-comments": "test_commands_e2e.py::test_hide_previous_plan_comments_on_replan",
    "server:hide-unchanged-plan-comments":
        "test_atlantis_flags_e2e.py::test_hide_unchanged_plan_comments_leaves_out_projects_without_changes",
    "server:locking-db-type":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:log-level":
        "test_settings.py::test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default",
    "server:markdown-template-overrides-dir":
        "test_atlantis_flags_e2e.py::test_markdown_template_overrides_replace_built_ins_and_a_broken_one_falls_back",
    "server:max-comments-per-command":
        "test_atlantis_flags_e2e.py::test_max_comments_per_command_keeps_the_end_and_links_the_whole_output",
    "server:parallel-apply":
        "test_repo_config_e2e.py::test_parallel_plan_and_apply_run_a_pull_requests_projects_at_once_or_in_turn",
    "server:parallel-plan":
        "test_repo_config_e2e.py::test_parallel_plan_and_apply_run_a_pull_requests_projects_at_once_or_in_turn",
    "server:parallel-pool-size": "test_locks_e2e.py::test_concurrent_pull_requests_racing_for_one_project_one_wins",
    "server:port": "test_server_smoke.py::test_atlas_server_under_gunicorn_plans_a_pull_request",
    "server:redis-db":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:redis-host":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:redis-insecure-skip-verify":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:redis-password":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:redis-port":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:redis-tls-enabled":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:redis-username":
        "test_scale_e2e.py::test_with_redis_stopped_deliveries_get_503_and_the_server_says_why_until_it_is_back",
    "server:repo-allowlist": "test_api_e2e.py::test_a_repository_outside_the_allowlist_gets_403",
    "server:repo-config": "test_server_config.py::test_without_a_repo_config_the_policy_applies_to_every_project",
    "server:tf-download":
        "test_repo_config_e2e.py::test_a_version_that_cannot_be_had_fails_the_project_with_a_clear_comment",
    "server:tf-download-url": "test_repo_config_e2e.py::test_project_terraform_version_is_downloaded_verified_and_used",
    "server:var-file-allowlist": "test_settings.py::test_var_file_directories_are_reachable_read_only_in_the_sandbox",
    "server:web-basic-auth":
        "test_web_pages.py::test_a_web_password_without_a_username_is_refused_rather_than_leaving_the_pages_open",
    "server:web-password":
        "test_web_pages.py::test_a_web_password_without_a_username_is_refused_rather_than_leaving_the_pages_open",
    "server:web-username":
        "test_operator_unlock_e2e.py::test_the_cli_unlock_and_the_lock_pages_discard_leave_the_same_result",
}
"""`where:name` → the test (under tests/) that shows a supported or equivalent key's effect, for rows that
name none. A row's own `test` wins; new rows give theirs in the row."""


def _shown(key: AtlantisKey) -> AtlantisKey:
    if key.test or key.status not in (Status.SUPPORTED, Status.EQUIVALENT):
        return key
    test = SHOWN_BY.get(f"{key.where}:{key.name}", "")
    return replace(key, test=f"tests/{test}" if test else "")


KEYS: tuple[AtlantisKey, ...] = tuple(_shown(key) for key in REPO_KEYS + REPOS_KEYS + SERVER_KEYS)


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
            "| Atlantis | status | atlas | notes | shown by |",
            "| --- | --- | --- | --- | --- |",
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
            cells = [f"`{shown}`", key.status.value, f"`{atlas}`" if atlas else "", key.reason.replace("|", "\\|"),
                     f"`{key.test}`" if key.test else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
