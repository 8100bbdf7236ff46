"""Apply on merge: the merged base branch, not the open pull request, is what reaches the infrastructure.

When a pull request whose projects apply on merge is merged, its locks stay held while each project
it planned is planned again at the merge commit in a fresh working copy. The new plan's changes
are compared with the plan reviewed on the pull request:

- the same: the new plan is applied, the result posted on the merged pull request and the
  `atlas/apply` status set on the merge commit; then the project's lock is released;
- different (someone else's change landed in between): nothing is applied; the difference is
  posted and the lock kept until an allowed user comments `atlas apply` (or `atlas unlock`), unless
  the project says `always`;
- never planned on the pull request (planning failed or was off): nothing is applied, and the pull
  request is told why.

A failed apply keeps the lock, so no other pull request plans on top of a half-applied project;
`atlas apply` on the merged pull request plans the merge commit again and retries.
"""

from __future__ import annotations

import logging
import shutil

from atlas.commands import apply_status, policy_check
from atlas.commands.audit import audited
from atlas.commands.check_runs import JobChecks
from atlas.commands.context import CommandContext
from atlas.commands.notifications import notify_apply
from atlas.commands.outcome import CommandOutcome, record_phase
from atlas.commands.project_run import run_project_stage
from atlas.config.repo_settings import RepoSettings, load_repo_settings
from atlas.github.checks import APPLY, CheckConclusion
from atlas.models import CommandName, Job, JobStatus, Project, ProjectResult, PullRequest
from atlas.render.comments import (
    comment_parts,
    render_apply_comment,
    render_error_comment,
    render_plan_comment,
    render_plan_difference,
)
from atlas.runtime.cancellation import CancelToken
from atlas.runtime.lock_handoff import plan_for_new_holders
from atlas.runtime.plan_compare import compare_plans, dump_changes, load_changes, planned_changes
from atlas.runtime.plans import show_json
from atlas.stores.audit import AuditAction
from atlas.stores.locks import lock_id_for
from atlas.stores.plans import PlanRecord
from atlas.stores.pulls import ProjectPhase
from atlas.vcs import CommitState

log = logging.getLogger(__name__)

STATUS_CONTEXT = apply_status.STATUS_CONTEXT


def settings_at_merge(ctx: CommandContext, job: Job) -> RepoSettings:
    """The repository's settings as the merge commit has them (raises ConfigError)."""
    pull = job.pull
    workdir = ctx.working_copies.checkout(pull.repo, pull.number, "merged-default", pull.merge_commit_sha,
                                          ctx.token_for(pull.repo), log=ctx.job_log(job.id))
    return load_repo_settings(ctx, pull, workdir)


def projects_applying_on_merge(ctx: CommandContext, pull: PullRequest, repo: RepoSettings) -> list[Project]:
    """The projects of a pull request that apply on merge (those it planned or tried to plan)."""
    planned = {plan.project for plan in ctx.state.plans(pull.repo.key, pull.number) if not plan.after_merge}
    tried = {state.project for state in ctx.state.project_states(pull.repo.key, pull.number)}
    return sorted((p for p in planned | tried if repo.apply_on_merge(p) != "false"),
                  key=lambda p: (p.dir, p.workspace))


@audited(AuditAction.APPLY)
def apply_on_merge(job: Job, ctx: CommandContext, cancel: CancelToken, repo: RepoSettings,
             projects: list[Project]) -> CommandOutcome:
    """The merge of a pull request with projects that apply on merge."""
    pull = job.pull
    reviewed = {plan.project: plan for plan in ctx.state.plans(pull.repo.key, pull.number)
                if not plan.after_merge}
    never_planned = [p for p in projects if p not in reviewed]
    if never_planned:
        lines = [f"- dir: `{p.dir}` workspace: `{p.workspace}`" for p in never_planned]
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            "atlas did not apply these projects on merge",
            "No plan of them was made on this pull request (planning failed or was disabled), so there "
            "was nothing reviewed to compare the merged result with:\n\n" + "\n".join(lines) +
            "\n\nPlan and apply them in a new pull request."))
        for project in never_planned:
            _release(ctx, pull, project)
    in_order = [p for group in repo.ordered(list(reviewed)) for p in group if p in projects]
    return _plan_and_apply(job, ctx, cancel, repo, [reviewed[p] for p in in_order], compare=True)


def apply_merged(job: Job, ctx: CommandContext, cancel: CancelToken) -> CommandOutcome:
    """`atlas apply` on a merged pull request: plan the merge commit again and apply it, no comparison."""
    pull = job.pull
    repo = settings_at_merge(ctx, job)
    held = sorted({lock.project for lock in ctx.locks.for_pull(pull.repo.key, pull.number)},
                  key=lambda p: (p.dir, p.workspace))
    targets = [p for group in repo.ordered(held) for p in group if _matches(job, p)]
    if not targets:
        ctx.vcs.post_comment(pull.repo, pull.number, render_error_comment(
            "atlas did not apply", "This pull request is merged and holds no lock waiting for an apply: "
            "there is nothing left to apply."))
        return CommandOutcome(JobStatus.SUCCEEDED, "refused: nothing to apply after merge")
    reviewed = {plan.project: plan for plan in ctx.state.plans(pull.repo.key, pull.number)}
    records = [reviewed.get(p) or _placeholder(pull, p) for p in targets]
    return _plan_and_apply(job, ctx, cancel, repo, records, compare=False)


def _plan_and_apply(job: Job, ctx: CommandContext, cancel: CancelToken, repo: RepoSettings,
                    reviewed: list[PlanRecord], *, compare: bool) -> CommandOutcome:
    pull = job.pull
    sha = pull.merge_commit_sha
    joblog = ctx.job_log(job.id)
    ctx.vcs.set_status(pull.repo, sha, CommitState.PENDING, STATUS_CONTEXT,
                       f"Planning {len(reviewed)} project(s) at the merge commit…")
    runs = JobChecks(job, ctx, APPLY, head_sha=sha)
    runs.queue(plan.project for plan in reviewed)
    applied: list[ProjectResult] = []
    waiting: list[Project] = []
    failed: list[Project] = []
    for plan in reviewed:
        if cancel.cancelled:
            break
        project = plan.project
        if any(dependency in failed for dependency in repo.depends_on(project)):
            continue
        runs.start(project)
        workdir = ctx.working_copies.checkout(pull.repo, pull.number, f"merged-{project.workspace}", sha,
                                              ctx.token_for(pull.repo), log=joblog)
        planfile = ctx.planfile(pull, project).with_suffix(".merged.tfplan")
        result = run_project_stage(ctx, job, repo, project, workdir, planfile, joblog, cancel,
                                   command=CommandName.PLAN, extra_args=())
        if not result.ok or result.summary is None:
            failed.append(project)
            record_phase(ctx, job, project, ProjectPhase.PLAN_FAILED, result.error or "plan failed", head_sha=sha)
            runs.complete(result, annotations_from=(workdir, joblog))
            ctx.vcs.post_comment(pull.repo, pull.number, _after_merge_heading(pull) + render_plan_comment(
                [result], command_prefix=ctx.settings.comment_prefix[0], head_sha=sha))
            continue
        changes = planned_changes(show_json(ctx.terraform, workdir, project, planfile, joblog))
        ctx.state.save_plan(PlanRecord(
            repo=pull.repo.key, pull_number=pull.number, project=project, head_sha=sha,
            summary=result.summary, job_id=job.id, changes=dump_changes(changes),
            after_merge=True,
        ))
        refused = policy_check.gate_merge_plan(ctx, job, repo, project, workdir, planfile, joblog)
        if refused is not None:
            failed.append(project)
            record_phase(ctx, job, project, ProjectPhase.APPLY_FAILED, "policies failed", head_sha=sha)
            runs.conclude(project, CheckConclusion.FAILURE, "Policies block the apply", refused)
            ctx.vcs.post_comment(pull.repo, pull.number, _after_merge_heading(pull) + render_error_comment(
                "atlas did not apply the merge commit", refused))
            continue
        mode = repo.apply_on_merge(project)
        if compare and mode != "always":
            difference = compare_plans(load_changes(plan.changes) if plan.changes else {}, changes)
            if not difference.same:
                waiting.append(project)
                record_phase(ctx, job, project, ProjectPhase.PLANNED, "differs from the reviewed plan", head_sha=sha)
                runs.conclude(project, CheckConclusion.ACTION_REQUIRED, "Differs from the reviewed plan", (
                    "The merge commit's plan is not the plan reviewed on the pull request, so nothing was applied. "
                    f"Review the difference on the pull request, then comment `{ctx.settings.comment_prefix[0]} "
                    "apply` there to apply it."))
                body = (render_plan_difference(project.label, difference,
                                               command_prefix=ctx.settings.comment_prefix[0], base_ref=pull.base_ref)
                        + "\n\n" + render_plan_comment([result], command_prefix=ctx.settings.comment_prefix[0],
                                                       head_sha=sha, job_url=ctx.job_url(job.id)))
                for part in comment_parts(body, max_comments=ctx.settings.max_comments_per_command,
                                          job_url=ctx.job_url(job.id), limit=ctx.comment_limit(pull.repo)):
                    ctx.vcs.post_comment(pull.repo, pull.number, part)
                continue
        outcome = run_project_stage(ctx, job, repo, project, workdir, planfile, joblog, cancel,
                                    command=CommandName.APPLY, extra_args=())
        applied.append(outcome)
        runs.complete(outcome)
        notify_apply(ctx, job, outcome, user=pull.merged_by or job.requested_by or pull.author, head_sha=sha)
        if outcome.ok:
            record_phase(ctx, job, project, ProjectPhase.APPLIED,
                         f"applied merge commit {sha[:7]} merged by {pull.merged_by or 'unknown'}", head_sha=sha)
            ctx.forget_plans(pull.repo.key, pull.number, project)
            planfile.unlink(missing_ok=True)
            _release(ctx, pull, project)
        else:
            failed.append(project)
            record_phase(ctx, job, project, ProjectPhase.APPLY_FAILED, outcome.error or "apply failed", head_sha=sha)

    if cancel.cancelled:
        runs.cancel_rest()
    else:
        runs.skip_rest("A project it depends on failed, so it was not applied.")
    if applied:
        body = _after_merge_heading(pull) + render_apply_comment(
            applied, command_prefix=ctx.settings.comment_prefix[0], head_sha=sha, job_url=ctx.job_url(job.id))
        if any(not r.ok for r in applied):
            body += ("\n\n**The apply failed, so this pull request keeps its locks**: no other pull request "
                     "plans on top of a half-applied project. Comment `atlas apply` here to plan the merge "
                     "commit again and retry, or `atlas unlock` to give up and release the locks.")
        for part in comment_parts(body, max_comments=ctx.settings.max_comments_per_command,
                                  job_url=ctx.job_url(job.id), limit=ctx.comment_limit(pull.repo)):
            ctx.vcs.post_comment(pull.repo, pull.number, part)
    done = sum(1 for r in applied if r.ok)
    total = len(reviewed)
    description = f"{done}/{total} projects applied after merge"
    if waiting:
        description += f", {len(waiting)} waiting for review"
    state = CommitState.SUCCESS if done == total else (CommitState.PENDING if waiting and not failed
                                                        else CommitState.FAILURE)
    ctx.vcs.set_status(pull.repo, sha, state, STATUS_CONTEXT, description, target_url=ctx.job_url(job.id))
    log.info("merge of %s: %s", pull.key, description)
    if not ctx.locks.for_pull(pull.repo.key, pull.number):
        _clean_up(ctx, pull)
    return CommandOutcome(JobStatus.FAILED if failed else JobStatus.SUCCEEDED, description)


def _after_merge_heading(pull: PullRequest) -> str:
    who = f" by @{pull.merged_by}" if pull.merged_by else ""
    return (f"**After merge**: this pull request was merged{who} as `{pull.merge_commit_sha[:7]}` into "
            f"`{pull.base_ref}`; atlas planned that commit.\n\n")


def _matches(job: Job, project: Project) -> bool:
    args = job.args
    if args.dir and args.dir != project.dir:
        return False
    return not args.workspace or args.workspace == project.workspace


def _placeholder(pull: PullRequest, project: Project) -> PlanRecord:
    """A project to plan again after merge whose reviewed plan is gone (e.g. a retry after a failure)."""
    return PlanRecord(repo=pull.repo.key, pull_number=pull.number, project=project, head_sha="",
                      job_id="")


def _release(ctx: CommandContext, pull: PullRequest, project: Project) -> None:
    release = ctx.locks.release(lock_id_for(pull.repo.key, project))
    plan_for_new_holders(ctx, release)


def _clean_up(ctx: CommandContext, pull: PullRequest) -> None:
    """Everything of the pull request is applied or given up: delete what it left on disk."""
    ctx.forget_plans(pull.repo.key, pull.number)
    shutil.rmtree(ctx.plans_dir(pull), ignore_errors=True)
    ctx.working_copies.remove_pull(pull.repo, pull.number)

