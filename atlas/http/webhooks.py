"""`POST /events`: the HTTP edge where GitHub and GitLab deliveries enter atlas.

It verifies, parses and de-duplicates a delivery and queues the job it asks for, then answers at
once: no git or terraform work happens in the request, since GitHub waits only 10 s for an answer.
Every refusal is a 4xx with a reason GitHub (or GitLab) shows in its delivery log. A GitLab delivery
is told by its `X-Gitlab-Event` header, vouched for by `X-Gitlab-Token` and de-duplicated by
`X-Gitlab-Event-UUID`; it becomes the same events and jobs as a GitHub one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, current_app, request

from atlas.config.settings import Settings
from atlas.github.app_auth import AppAuthError, GitHubApp
from atlas.github.checks import CheckEventError, IgnoredCheckEvent, parse_check_event
from atlas.intake.events import (
    CommentEvent,
    Ignored,
    PayloadError,
    Ping,
    PullRequestEvent,
    job_for_comment,
    job_for_event,
    parse_event,
    parse_repo,
)
from atlas.intake.gitlab_events import parse_gitlab_event
from atlas.jobs.queue import JobQueue, QueueUnavailable
from atlas.jobs.rq import RQQueue
from atlas.models import CommandArgs, CommandName, Job, PullRequest, VCSHost
from atlas.stores.deliveries import DeliveryStore
from atlas.stores.redis.backend import redis_location
from atlas.vcs import VCSError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024
"""GitHub caps payloads at 25 MB; anything larger is not a GitHub delivery."""

blueprint = Blueprint("webhooks", __name__)


def text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


MAX_DELIVERY_ID_CHARS = 100
"""GitHub's delivery ids are GUIDs (36 characters); a longer header is not one."""


def signature_problem(body: bytes, header: str | None, secret: str) -> str | None:
    """Why the X-Hub-Signature-256 header does not vouch for the body, or None when it does."""
    if not header:
        return "missing X-Hub-Signature-256 header (a webhook secret is configured)"
    algorithm, _, received = header.partition("=")
    if algorithm != "sha256" or not received:
        return "malformed X-Hub-Signature-256 header: expected sha256=<hex digest>"
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    # Headers arrive as latin-1 text; compared as bytes, a non-ASCII header is simply wrong.
    if not hmac.compare_digest(expected, received.strip().lower().encode("latin-1", errors="replace")):
        return "X-Hub-Signature-256 does not match the body: check the webhook secret"
    return None


def decode_payload(body: bytes, content_type: str) -> Mapping[str, Any]:
    """The JSON payload, sent either raw or form-encoded as `payload=` (a hook setting)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", errors="replace"))
        if "payload" not in form:
            raise PayloadError("form-encoded delivery has no payload field")
        raw = form["payload"][0]
    else:
        raw = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as error:
        raise PayloadError(
            f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise PayloadError(f"body is not JSON atlas accepts: {error}") from None
    except RecursionError:
        raise PayloadError("payload nests arrays or objects too deeply") from None
    if not isinstance(payload, dict):
        raise PayloadError("payload is not a JSON object")
    _check_storable(payload)
    return payload


def _check_storable(value: object) -> None:
    """PayloadError for text no store can keep: lone UTF-16 surrogates (`\\ud800`), which are not UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PayloadError(
            f"payload holds text that is not valid Unicode ({text[error.start:error.end]!a}), which atlas cannot keep"
        ) from None


@blueprint.post("/events")
def receive_event() -> Response:
    settings: Settings = current_app.config["ATLAS_SETTINGS"]
    body = request.get_data(cache=False)

    gitlab_event = request.headers.get("X-Gitlab-Event")
    if gitlab_event is not None:
        return _receive_gitlab_event(settings, gitlab_event, body)
    if not settings.github_enabled and settings.gitlab_enabled:
        return text(400, "this server serves GitLab only: a delivery needs an X-Gitlab-Event header")
    if settings.gh_webhook_secret is None and not settings.allow_unsigned_webhooks:
        return text(401, "this server has no webhook secret and does not accept unsigned deliveries")
    if settings.gh_webhook_secret is not None:
        problem = signature_problem(body, request.headers.get("X-Hub-Signature-256"),
                                    settings.gh_webhook_secret.get_secret_value())
        if problem:
            log.warning("refused delivery %s: %s", request.headers.get("X-GitHub-Delivery", "?"), problem)
            return text(401, problem)

    event_name = request.headers.get("X-GitHub-Event")
    if not event_name:
        return text(400, "missing X-GitHub-Event header")
    delivery_id = request.headers.get("X-GitHub-Delivery") or None
    if delivery_id is not None and (len(delivery_id) > MAX_DELIVERY_ID_CHARS or not delivery_id.isprintable()
                                    or not delivery_id.isascii()):
        return text(400, "X-GitHub-Delivery is not a delivery id (GitHub sends a GUID)")
    app: GitHubApp | None = current_app.config.get("ATLAS_GITHUB_APP")
    try:
        payload = decode_payload(body, request.content_type or "")
        if event_name in INSTALLATION_EVENTS:
            return _installation_event(event_name, payload, delivery_id)
        if event_name in CHECK_EVENTS:
            return _check_event(event_name, payload, settings, app, delivery_id)
        event = parse_event(event_name, payload)
    except PayloadError as error:
        return text(400, f"bad payload: {error}")

    if isinstance(event, Ignored):
        return text(200, f"ignored: {event.reason}")
    if isinstance(event, Ping):
        return text(200, "pong")

    # The configured GitHub's host, not the payload's URLs: a delivery cannot name where atlas goes.
    repo_id = settings.repo_id(event.repo.full_name)
    if not settings.repo_allowed(repo_id):
        log.warning("refused delivery %s: repository %s is not in --repo-allowlist", delivery_id, repo_id)
        return text(403, f"repository {repo_id} is not in this server's --repo-allowlist")
    installation_id: int | None = None
    bot_login = settings.gh_user
    if app is not None:
        try:
            installation_id = _installation_with_token(app, event.repo.full_name, payload)
        except AppAuthError as error:
            # Answered 200: GitHub redelivering it cannot help until the installation is fixed.
            log.warning("ignored delivery %s for %s: %s", delivery_id, repo_id, error)
            return text(200, f"ignored: atlas cannot act on {event.repo.full_name} as the GitHub App: {error}")
        try:
            bot_login = bot_login or app.bot_login
        except AppAuthError as error:
            log.error("refused delivery %s: cannot read the GitHub App's identity (%s)", delivery_id, error)
            return text(503, f"cannot read the GitHub App's identity now ({error}); redeliver later")
    job = _job_for(event, settings, delivery_id, bot_login)
    if isinstance(job, Ignored):
        return text(200, f"ignored: {job.reason}")
    if installation_id is not None:
        job = job.model_copy(update={"installation_id": installation_id})
    return _queue(job, delivery_id, event_name)


CHECK_EVENTS = ("check_run", "check_suite")


def _check_event(event_name: str, payload: Mapping[str, Any], settings: Settings, app: GitHubApp | None,
                 delivery_id: str | None) -> Response:
    """Re-run (a check run or the whole suite) re-plans; the Apply button applies that project's plan."""
    if app is None or not settings.checks_enabled:
        return text(200, f"ignored: {event_name} events need --gh-checks with a GitHub App")
    try:
        asked = parse_check_event(event_name, payload, app_id=app.app_id)
    except CheckEventError as error:
        raise PayloadError(str(error)) from None
    if isinstance(asked, IgnoredCheckEvent):
        return text(200, f"ignored: {asked.reason}")
    repository = payload.get("repository")
    if not isinstance(repository, Mapping):
        raise PayloadError(f"the {event_name} delivery names no repository")
    repo = parse_repo(repository)
    repo_id = settings.repo_id(repo.full_name)
    if not settings.repo_allowed(repo_id):
        log.warning("refused delivery %s: repository %s is not in --repo-allowlist", delivery_id, repo_id)
        return text(403, f"repository {repo_id} is not in this server's --repo-allowlist")
    if not asked.pull_numbers:
        log.info("ignored %s from %s on %s@%s: it names no pull request", asked.trigger, asked.sender,
                 repo.full_name, asked.head_sha[:12])
        return text(200, f"ignored: {asked.trigger} names no pull request of {repo.full_name}")
    try:
        installation_id = _installation_with_token(app, repo.full_name, payload)
    except AppAuthError as error:
        log.warning("ignored delivery %s for %s: %s", delivery_id, repo_id, error)
        return text(200, f"ignored: atlas cannot act on {repo.full_name} as the GitHub App: {error}")
    args = CommandArgs()
    if asked.project is not None:
        args = CommandArgs(dir=asked.project.dir, workspace=asked.project.workspace,
                           project=asked.project.project_name)
    answers = []
    for number in asked.pull_numbers:
        # An empty head: the job reads the pull request from GitHub before it runs.
        pull = PullRequest(repo=repo, number=number, head_sha="", head_ref="", base_ref="", author="")
        job = Job(command=CommandName.APPLY if asked.command == "apply" else CommandName.PLAN, pull=pull,
                  delivery_id=delivery_id, requested_by=asked.sender, args=args, installation_id=installation_id,
                  from_check=True)
        claim = delivery_id if len(asked.pull_numbers) == 1 else (f"{delivery_id}#{number}" if delivery_id else None)
        answers.append(_queue(job, claim, event_name))
    worst = max(answers, key=lambda r: r.status_code)
    return worst


def gitlab_token_problem(received: str | None, secret: str) -> str | None:
    """Why `X-Gitlab-Token` does not vouch for the delivery, or None when it is the secret (constant time)."""
    if received is None:
        return "missing X-Gitlab-Token header (a GitLab webhook secret is configured)"
    # Headers arrive as latin-1 text; compared as bytes, a non-ASCII header is simply wrong.
    if not hmac.compare_digest(received.encode("latin-1", errors="replace"), secret.encode()):
        return "X-Gitlab-Token is not this server's GitLab webhook secret"
    return None


def _receive_gitlab_event(settings: Settings, event_name: str, body: bytes) -> Response:
    """A GitLab delivery: its secret token checked, parsed into the events GitHub's become, and queued."""
    event_uuid = request.headers.get("X-Gitlab-Event-UUID") or None
    if not settings.gitlab_enabled:
        return text(400, "this server does not serve GitLab (no --gitlab-token)")
    if settings.gitlab_webhook_secret is None and not settings.allow_unsigned_webhooks:
        return text(401, "this server has no GitLab webhook secret and does not accept unsigned deliveries")
    if settings.gitlab_webhook_secret is not None:
        problem = gitlab_token_problem(request.headers.get("X-Gitlab-Token"),
                                       settings.gitlab_webhook_secret.get_secret_value())
        if problem:
            log.warning("refused GitLab delivery %s: %s", event_uuid or "?", problem)
            return text(401, problem)
    if event_uuid is not None and (len(event_uuid) > MAX_DELIVERY_ID_CHARS or not event_uuid.isprintable()
                                   or not event_uuid.isascii()):
        return text(400, "X-Gitlab-Event-UUID is not an event id (GitLab sends a UUID)")
    bot_username = _gitlab_bot_username(settings)
    try:
        payload = decode_payload(body, "application/json")
        event = parse_gitlab_event(event_name, payload, bot_username=bot_username)
    except PayloadError as error:
        return text(400, f"bad payload: {error}")
    if isinstance(event, Ignored):
        return text(200, f"ignored: {event.reason}")
    repo_id = settings.repo_id(event.repo.full_name, VCSHost.GITLAB)
    if not settings.repo_allowed(repo_id):
        log.warning("refused GitLab delivery %s: project %s is not in --repo-allowlist", event_uuid, repo_id)
        return text(403, f"project {repo_id} is not in this server's --repo-allowlist")
    job = _job_for(event, settings, _gitlab_delivery_id(event_uuid), bot_username)
    if isinstance(job, Ignored):
        return text(200, f"ignored: {job.reason}")
    return _queue(job, _gitlab_delivery_id(event_uuid), event_name)


def _gitlab_delivery_id(event_uuid: str | None) -> str | None:
    """The delivery id a GitLab event is claimed under: apart from GitHub's GUIDs, which could be equal."""
    return f"gitlab:{event_uuid}" if event_uuid else None


def _gitlab_bot_username(settings: Settings) -> str | None:
    """Whose notes are atlas's own: `--gitlab-user`, else the token's user (GET /user, asked once)."""
    if settings.gitlab_user:
        return settings.gitlab_user
    identity: Callable[[], str] | None = current_app.config.get("ATLAS_GITLAB_USERNAME")
    if identity is None:
        return None
    try:
        return identity()
    except VCSError as error:
        # Its own notes are still no commands: they are answered as any other comment would be.
        log.warning("cannot read the GitLab token's user (%s); set --gitlab-user", error)
        return None


INSTALLATION_EVENTS = ("installation", "installation_repositories")
"""A GitHub App being installed, changed or removed, or repositories added to or removed from it."""


def _installation_event(event_name: str, payload: Mapping[str, Any], delivery_id: str | None) -> Response:
    """Log what changed about the App's installation; there is nothing to run."""
    action = payload.get("action")
    installation = payload.get("installation")
    if not isinstance(action, str) or not isinstance(installation, Mapping):
        raise PayloadError(f"the {event_name} delivery has no action or installation")
    account = installation.get("account")
    login = account.get("login") if isinstance(account, Mapping) else None

    def names(key: str) -> list[str]:
        repos = payload.get(key)
        if not isinstance(repos, list):
            return []
        return [str(r.get("full_name")) for r in repos if isinstance(r, Mapping) and r.get("full_name")]

    added, removed = names("repositories_added"), names("repositories_removed")
    if event_name == "installation":
        added = names("repositories")
    log.info(
        "GitHub App installation %s on %s: %s %s (delivery %s)%s%s",
        installation.get("id"), login or "?", event_name, action, delivery_id,
        f"; repositories added: {', '.join(added)}" if added else "",
        f"; repositories removed: {', '.join(removed)}" if removed else "",
    )
    return text(200, f"noted: {event_name} {action} for installation {installation.get('id')}")


def _installation_with_token(app: GitHubApp, full_name: str, payload: Mapping[str, Any]) -> int:
    """The installation the delivery is for, once atlas holds a token of it; AppAuthError with the reason."""
    installation_id = app.installation_id(full_name, payload)
    app.remember_installation(full_name, installation_id)
    app.token(installation_id)
    return installation_id


def _job_for(
    event: PullRequestEvent | CommentEvent, settings: Settings, delivery_id: str | None, bot_login: str | None,
) -> Job | Ignored:
    if isinstance(event, CommentEvent):
        return job_for_comment(
            event,
            prefixes=settings.comment_prefix,
            allowed_commands=settings.allow_commands,
            allow_backend_config=settings.allow_backend_config_args,
            bot_login=bot_login,
            delivery_id=delivery_id,
        )
    if settings.disable_autoplan and event.action != "closed":
        return Ignored("autoplan is off on this server (--disable-autoplan): comment `atlas plan` to plan")
    return job_for_event(event, allow_draft_prs=settings.allow_draft_prs, delivery_id=delivery_id)


def _queue(job: Job, delivery_id: str | None, event_name: str) -> Response:

    state: DeliveryStore = current_app.config["ATLAS_STATE"]
    queue: JobQueue = current_app.config["ATLAS_QUEUE"]
    if delivery_id and isinstance(queue, RQQueue):
        return _queue_on_redis(queue, job, delivery_id, event_name)
    try:
        first_time = not delivery_id or state.claim_delivery(delivery_id, event_name)
    except Exception as error:
        # The state store is unreachable: refuse, so GitHub's redelivery runs once it is back.
        where = store_location(current_app.config["ATLAS_SETTINGS"])
        log.error("refused delivery %s: %s is unreachable (%s); it can be redelivered", delivery_id, where, error)
        return text(503, f"cannot record the delivery now: {where} is unreachable; redeliver later")
    if not first_time:
        return text(200, f"already accepted delivery {delivery_id}; not running it again")
    try:
        queue.enqueue(job)
    except Exception as error:
        if delivery_id:
            # Not accepted, so GitHub's redelivery of this id must run.
            with contextlib.suppress(Exception):
                state.release_delivery(delivery_id)
        if _unstorable(error):
            # Redelivering the same bytes cannot succeed, so this is not the 503 that asks for it.
            log.warning("refused delivery %s: its job cannot be stored (%s)", delivery_id, error)
            return text(400, f"bad payload: atlas cannot store the job it asks for ({error})")
        reason = str(error) if isinstance(error, QueueUnavailable) else "the job could not be stored"
        log.error("could not queue delivery %s: %s (%s)", delivery_id, reason, error)
        return text(503, f"cannot queue work now: {reason}; redeliver later")
    log.info("queued %s job %s for %s (delivery %s)", job.command, job.id, job.pull.key, delivery_id)
    return text(202, f"queued {job.command} for {job.pull.key} as job {job.id}")


def _queue_on_redis(queue: RQQueue, job: Job, delivery_id: str, event_name: str) -> Response:
    """The delivery claimed and its job queued in one Redis transaction, so that nothing is acknowledged
    that was not queued, and a claim never outlives a job that could not be queued."""
    try:
        queued = queue.enqueue_delivery(job, delivery_id, event_name)
    except QueueUnavailable as error:
        log.error("refused delivery %s: %s; it can be redelivered", delivery_id, error)
        return text(503, f"cannot queue work now: {error}; redeliver later")
    except Exception as error:
        if _unstorable(error):
            log.warning("refused delivery %s: its job cannot be stored (%s)", delivery_id, error)
            return text(400, f"bad payload: atlas cannot store the job it asks for ({error})")
        raise
    if not queued:
        return text(200, f"already accepted delivery {delivery_id}; not running it again")
    log.info("queued %s job %s for %s (delivery %s)", job.command, job.id, job.pull.key, delivery_id)
    return text(202, f"queued {job.command} for {job.pull.key} as job {job.id}")


def _unstorable(error: Exception) -> bool:
    """Whether the job failed to store because of what it holds, rather than because the store is down."""
    return isinstance(error, (OverflowError, UnicodeError, TypeError, ValueError))


def store_location(settings: Settings) -> str:
    """The state store as an operator names it in a message: the SQLite file's store, or Redis's address."""
    if settings.redis_url is None:
        return "the state store"
    return f"Redis at {redis_location(settings.redis_url.get_secret_value())}"
