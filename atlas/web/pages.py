"""The server-rendered pages: locks and jobs, one lock, one job (live), one pull request.

Pages are Jinja templates in `atlas/templates/web/` over what the stores know; the only script is
`live.js`, which appends a running job's output as it streams in.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from atlas import __version__
from atlas.commands.unlock import LockChanged, discard_and_unlock, holder_token
from atlas.models import JobStatus, Project, PullRequest, VCSHost, split_repo_key, utcnow
from atlas.stores.jobs import JobRecord
from atlas.stores.locks import ProjectLock, lock_id_parts
from atlas.stores.plans import PlanRecord
from atlas.stores.pulls import ProjectState
from atlas.web.ansi import ansi_to_html, strip_ansi
from atlas.web.csrf import COOKIE as CSRF_COOKIE
from atlas.web.csrf import FIELD as CSRF_FIELD
from atlas.web.csrf import CsrfTokens
from atlas.web.live import LogFollower, busy, follow_job
from atlas.web.output import job_output, log_path, output_expired, output_store
from atlas.web.site import current_site, require_login

log = logging.getLogger(__name__)

NOTHING = "-"
"""Shown for a time or duration that does not exist (yet)."""

RECENT_JOBS = 30
"""Jobs listed on the front page."""

PULL_JOBS_SCANNED = 500
"""Recent jobs searched for those of one pull request."""

PAGE_OUTPUT_BYTES = 2 * 1024 * 1024
"""Output shown on a job page; the rest of a longer output is in its plain-text download."""

pages = Blueprint(
    "pages",
    __name__,
    template_folder="../templates",
    static_folder="static",
    static_url_path="/assets",
)
pages.before_request(require_login)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
"""No framing (the unlock button must not be clickjacked), no scripts but our own file."""


@pages.after_request
def add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    token = g.pop("new_csrf_cookie", None)
    if token is not None:
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/",
            secure=current_site().secure_cookies or request.is_secure,
        )
    return response


@pages.context_processor
def template_globals() -> dict[str, Any]:
    return {"version": __version__, "csrf_field": csrf_field, "actions_enabled": current_site().auth is not None}


@pages.app_template_filter("when")
def when(moment: datetime | None) -> str:
    """An absolute time, in UTC."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else NOTHING


@pages.app_template_filter("age")
def age(moment: datetime | None) -> str:
    """How long ago, roughly: `12 s ago`, `5 min ago`, `3 h ago`, `2 days ago`."""
    if moment is None:
        return NOTHING
    return f"{span((utcnow() - moment).total_seconds())} ago"


@pages.app_template_filter("span")
def span(seconds: float | None) -> str:
    if seconds is None:
        return NOTHING
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600:.0f} h"
    return f"{seconds // 86400:.0f} days"


def duration(record: JobRecord) -> float | None:
    if record.started_at is None:
        return None
    return ((record.finished_at or utcnow()) - record.started_at).total_seconds()


def page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(f"web/{template}", duration=duration, **context), status=status)


def not_found(title: str, message: str) -> Response:
    return page("message.html", 404, title=title, message=message)


JOB_ID = re.compile(r"[0-9a-f]{16}")
"""What job ids look like (`models.new_id`); anything else is answered without asking the store."""

REPO_PART = re.compile(r"[A-Za-z0-9_.-]{1,100}")

MAX_GITLAB_DEPTH = 21
"""A GitLab project path: a group, up to 20 levels of subgroups, and the project."""

MAX_PULL_NUMBER = 2**31 - 1
"""GitHub's pull request numbers are 32-bit."""


def not_a_job(job_id: str) -> Response | None:
    if JOB_ID.fullmatch(job_id):
        return None
    return not_found("No such job", "This is not the address of a job: job ids are 16 hexadecimal digits.")


# CSRF


def csrf_cookie_token() -> str:
    """This browser's token, issuing one (sent with the response) when it has none."""
    token = request.cookies.get(CSRF_COOKIE)
    if token and 20 <= len(token) <= 100:
        return token
    new: str | None = g.get("new_csrf_cookie")
    if new is None:
        new = CsrfTokens.new_cookie_token()
        g.new_csrf_cookie = new
    return new


def csrf_field() -> Markup:
    """The hidden form field every POST form carries."""
    token = current_site().csrf.form_token(csrf_cookie_token())
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


def csrf_refusal() -> Response | None:
    if current_site().csrf.valid(request.cookies.get(CSRF_COOKIE), request.form.get(CSRF_FIELD)):
        return None
    return page(
        "message.html",
        403,
        title="Form refused",
        message="The form did not carry this browser's security token: it expired, or it was sent from "
        "another site. Reload the page and try again.",
    )


# Locks and jobs


@pages.get("/")
def index() -> Response:
    site = current_site()
    locks = site.ctx.locks.all()
    return page(
        "index.html",
        locks=locks,
        waiting={lock.id: site.ctx.locks.waiting(lock.repo, lock.project) for lock in locks},
        running=site.ctx.state.jobs(statuses=(JobStatus.RUNNING,), limit=100),
        queued=site.ctx.state.jobs(statuses=(JobStatus.QUEUED,), limit=100),
        recent=site.ctx.state.jobs(limit=RECENT_JOBS),
        released=_released_banner(),
    )


def _released_banner() -> str | None:
    """The message after a lock was released from its page (the form redirects here)."""
    lock_id = request.args.get("released")
    if not lock_id:
        return None
    where = describe_lock_id(lock_id) or "the project"
    pull = request.args.get("pull", type=int)
    heir = request.args.get("heir", type=int)
    text = f"Released the lock on {where}" + (f" held by #{pull}" if pull else "") + " and discarded its plan. "
    if heir:
        text += f"The lock passed to #{heir}, which was waiting for it; atlas plans it next. "
    if request.args.get("told") == "no":
        text += "Commenting on the pull request failed: the server log has the reason."
    elif pull:
        text += f"#{pull} was told in a comment."
    return text


def describe_lock_id(lock_id: str) -> str | None:
    """`acme/infra app (workspace default)` from a lock id, or None when it is not one."""
    parts = lock_id_parts(lock_id)
    if parts is None:
        return None
    repo, project_dir, workspace = parts
    return f"{repo} {project_dir} (workspace {workspace})"


@pages.get("/locks/<lock_id>")
def lock_page(lock_id: str) -> Response:
    return _lock_page(lock_id)


def _lock_page(lock_id: str, status: int = 200, error: str | None = None) -> Response:
    site = current_site()
    where = describe_lock_id(lock_id)
    if where is None:
        return not_found("No such lock", "This is not the address of a lock.")
    lock = site.ctx.locks.get_by_id(lock_id)
    if lock is None:
        return not_found("Not locked", f"{where} is not locked now.")
    plan = next((p for p in site.ctx.state.plans(lock.repo, lock.pull_number) if _same(p.project, lock.project)),
                None)
    return page(
        "lock.html",
        status,
        lock=lock,
        plan=plan,
        waiting=site.ctx.locks.waiting(lock.repo, lock.project),
        holder=holder_token(lock),
        error=error,
    )


@pages.post("/locks/<lock_id>/unlock")
def unlock(lock_id: str) -> ResponseReturnValue:
    if current_site().auth is None:
        return page(
            "message.html", 403, title="The pages are read-only",
            message="This server has no web password, so its pages cannot discard plans or unlock: anyone who "
            "can reach them could. Start atlas with --web-username and --web-password to enable it, or run "
            f"`atlas locks unlock {lock_id}` on the server.",
        )
    refusal = csrf_refusal()
    if refusal is not None:
        return refusal
    if request.form.get("confirm") != "yes":
        return _lock_page(lock_id, 400, error="Tick the box to confirm that the plan is discarded and the lock "
                                              "released.")
    site = current_site()
    operator = site.auth.user() if site.auth is not None else None
    try:
        result = discard_and_unlock(site.ctx, lock_id, operator=operator, trigger="web",
                                    holder=request.form.get("holder", ""))
    except LockChanged:
        return _lock_page(lock_id, 409, error="The lock changed since this page was loaded; nothing was released. "
                                              "Check who holds it now and try again.")
    if result.comment_error is not None:
        log.warning("released lock %s, but telling %s failed: %s", lock_id, result.lock.pull_key, result.comment_error)
    log.info("%s released the lock of %s on %s from the web page", operator or "an operator", result.lock.pull_key,
             result.lock.project.label)
    query: dict[str, Any] = {"released": lock_id, "pull": result.lock.pull_number}
    if result.heir is not None:
        query["heir"] = result.heir
    if result.comment_error is not None:
        query["told"] = "no"
    return redirect(url_for("pages.index", **query), 303)


# One job


@pages.get("/jobs/<job_id>")
def job_page(job_id: str) -> Response:
    if (refusal := not_a_job(job_id)) is not None:
        return refusal
    site = current_site()
    record = site.ctx.state.get_job(job_id)
    if record is None:
        return not_found("No such job", f"atlas has no record of job {job_id}.")
    offset: int | None = None
    if record.status.finished:
        text = job_output(site.ctx, job_id)
    else:
        follower = follower_of(job_id)
        lines = follower.read_lines()
        while more := follower.read_lines():
            lines += more
        text, offset = "".join(f"{line}\n" for line in lines), follower.offset
    shown, cut = _tail(text or "", PAGE_OUTPUT_BYTES)
    return page(
        "job.html",
        record=record,
        # Every line ends with its newline, so that streamed lines start on a line of their own.
        output=Markup("").join(ansi_to_html(line) + "\n" for line in shown.splitlines()),
        expired=text is None and output_expired(site.ctx, job_id),
        never_written=text is None and not output_expired(site.ctx, job_id),
        cut=cut,
        offset=offset,
        retention_days=site.retention_days,
    )


def _tail(text: str, limit: int) -> tuple[str, bool]:
    """The end of `text` from a line start, at most about `limit` bytes; and whether it was cut."""
    if len(text) <= limit:
        return text, False
    tail = text[-limit:]
    return tail[tail.find("\n") + 1:], True


@pages.get("/jobs/<job_id>/output.txt")
def job_output_text(job_id: str) -> Response:
    if (refusal := not_a_job(job_id)) is not None:
        return refusal
    site = current_site()
    record = site.ctx.state.get_job(job_id)
    if record is None:
        return not_found("No such job", f"atlas has no record of job {job_id}.")
    text = job_output(site.ctx, job_id)
    if text is None and record.status.finished and output_expired(site.ctx, job_id):
        return not_found("Output expired", f"The output of this job was deleted: atlas keeps job output for "
                                           f"{site.retention_days} days.")
    return Response(strip_ansi(text or ""), mimetype="text/plain")


@pages.get("/jobs/<job_id>/stream")
def job_stream(job_id: str) -> Response:
    if (refusal := not_a_job(job_id)) is not None:
        return refusal
    site = current_site()
    state = site.ctx.state
    if state.get_job(job_id) is None:
        return not_found("No such job", f"atlas has no record of job {job_id}.")
    offset = _int(request.headers.get("Last-Event-ID")) or _int(request.args.get("from")) or 0
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if not site.streams.try_take():
        return Response(busy(), mimetype="text/event-stream", headers=headers)
    follower = follower_of(job_id, offset)
    response = Response(follow_job(follower, lambda: state.get_job(job_id)), mimetype="text/event-stream",
                        headers=headers)
    response.call_on_close(site.streams.give_back)
    return response


def follower_of(job_id: str, offset: int = 0) -> LogFollower:
    """Follows the job's output from `offset`: its log file, or the state store's copy, or what the worker
    running it publishes (Redis mode)."""
    ctx = current_site().ctx
    store = output_store(ctx.state)
    stored = (lambda: store.job_output(job_id)) if store is not None else None
    live = ctx.live_output
    return LogFollower(log_path(ctx, job_id), offset, stored,
                       live=functools.partial(live.read, job_id) if live is not None else None)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


# One pull request


@dataclass
class ProjectRow:
    """One project of a pull request as its page lists it."""

    project: Project
    state: ProjectState | None = None
    plan: PlanRecord | None = None
    lock: ProjectLock | None = None
    held_by_other: ProjectLock | None = None
    waiting_position: int | None = None


@pages.get("/pulls/<path:repo>/<int:number>")
def pull_page(repo: str, number: int) -> Response:
    """A pull request's page; `repo` is its repository's key (`OWNER/NAME`, or `gitlab:GROUP/…/PROJECT`)."""
    path, vcs = split_repo_key(repo)
    parts = path.split("/")
    if not (len(parts) == 2 or (vcs is VCSHost.GITLAB and 2 <= len(parts) <= MAX_GITLAB_DEPTH)) or not all(
            REPO_PART.fullmatch(part) for part in parts):
        return not_found("Unknown pull request",
                         "This is not the address of a repository: OWNER/NAME, or gitlab:GROUP/…/PROJECT.")
    if not 1 <= number <= MAX_PULL_NUMBER:
        return not_found("Unknown pull request", f"#{number} cannot be a pull request number.")
    site = current_site()
    state, locks = site.ctx.state, site.ctx.locks
    pull: PullRequest | None = state.get_pull(repo, number)
    jobs = [r for r in state.jobs(limit=PULL_JOBS_SCANNED) if r.job.pull.repo.key == repo
            and r.job.pull.number == number][:RECENT_JOBS]
    rows: dict[tuple[str, str], ProjectRow] = {}

    def row(project: Project) -> ProjectRow:
        return rows.setdefault((project.dir, project.workspace), ProjectRow(project=project))

    for project_state in state.project_states(repo, number):
        row(project_state.project).state = project_state
    for plan in state.plans(repo, number):
        row(plan.project).plan = plan
    for lock in locks.for_pull(repo, number):
        row(lock.project).lock = lock
    for project in locks.waiting_for_pull(repo, number):
        waiting = row(project)
        queue = locks.waiting(repo, project)
        waiting.waiting_position = queue.index(number) + 1 if number in queue else None
        waiting.held_by_other = locks.get(repo, project)
    if pull is None and not rows and not jobs:
        return not_found("Unknown pull request", f"atlas knows nothing of {repo}#{number}.")
    return page(
        "pull.html",
        repo=repo,
        number=number,
        pull=pull,
        rows=[rows[key] for key in sorted(rows)],
        jobs=jobs,
    )


def _same(one: Project, other: Project) -> bool:
    return (one.dir, one.workspace) == (other.dir, other.workspace)
