"""A GitHub App in the emulator: its JWT, installations, installation tokens and the check runs API.

`GitHubAppEmulator(emulator)` registers an App with a fresh RSA key (`private_key_pem` is what
atlas is configured with), answers `GET /app`, `GET /repos/{o}/{r}/installation`,
`GET /orgs/{org}/installation`, `GET /users/{user}/installation` and
`POST /app/installations/{id}/access_tokens` to a JWT verified with the App's public key and its
claims checked as GitHub checks them, and makes the tokens it mints good for the REST API and git
over HTTP (user `x-access-token`) until they expire or a test revokes them. `GET /user` answers 403
to an installation token, as GitHub does. Check runs are created, updated, read and listed per ref,
with GitHub's validation (limits on output, annotations per request, actions).

Response bodies are shaped after the recordings in tests/data/github/app/rest (see its README).
"""

from __future__ import annotations

import copy
import itertools
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, g, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from tests.emulator.api import ApiError, json_response
from tests.emulator.responses import GITHUB_API, rehome
from tests.emulator.server import API_PREFIX, GitHubEmulator
from tests.emulator.state import EmulatedRepo, iso, node_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "github" / "app"
"""Recorded GitHub App bodies and payloads (tests/data/github/app), kept in the repository."""

DOCS = "https://docs.github.com/rest"
JWT_MAX_SECONDS = 600
"""GitHub refuses a JWT whose `exp` is more than ten minutes ahead of its clock."""
CLOCK_LEEWAY = 30
"""Seconds of clock difference the emulator forgives, as GitHub forgives some."""
OUTPUT_MAX_CHARS = 65535
ANNOTATIONS_PER_REQUEST = 50
ACTIONS_MAX = 3
STATUSES = ("queued", "in_progress", "completed")
ACTIONS_ONLY_STATUSES = ("waiting", "requested", "pending")
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out")
ANNOTATION_LEVELS = ("notice", "warning", "failure")


@cache
def _recorded_text(name: str) -> str:
    return (DATA_DIR / name).read_text()


def recorded(name: str) -> Any:
    """A fresh copy of a recorded body under tests/data/github/app, e.g. `rest/app.json`."""
    return json.loads(_recorded_text(name))


@dataclass
class IssuedToken:
    token: str
    installation_id: int
    expires_at: datetime
    revoked: bool = False


@dataclass
class Installation:
    id: int
    account: str
    repositories: set[str] | None
    """Lower-cased full names the App may see there; None for all of the account's."""

    def covers(self, full_name: str) -> bool:
        owner = full_name.partition("/")[0].lower()
        if owner != self.account.lower():
            return False
        return self.repositories is None or full_name.lower() in self.repositories


@dataclass
class CheckRun:
    id: int
    repo: EmulatedRepo
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    external_id: str
    details_url: str | None
    started_at: datetime | None
    completed_at: datetime | None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    check_suite_id: int = 0
    updates: int = 0

    def snapshot(self) -> dict[str, Any]:
        """What a test inspects: the run as GitHub stores it, actions and annotations included."""
        return {
            "id": self.id,
            "name": self.name,
            "head_sha": self.head_sha,
            "status": self.status,
            "conclusion": self.conclusion,
            "external_id": self.external_id,
            "details_url": self.details_url,
            "output": {"title": self.title, "summary": self.summary, "text": self.text},
            "annotations": copy.deepcopy(self.annotations),
            "actions": copy.deepcopy(self.actions),
            "updates": self.updates,
        }


class GitHubAppEmulator:
    """One GitHub App registered with `emulator`; many may be registered with one emulator."""

    def __init__(
        self,
        emulator: GitHubEmulator,
        *,
        app_id: int = 424_242,
        slug: str = "atlas-test-app",
        name: str = "Atlas Test App",
        owner: str = "acme",
        token_lifetime: timedelta = timedelta(hours=1),
    ) -> None:
        self.emulator = emulator
        self.app_id = app_id
        self.slug = slug
        self.name = name
        self.owner = owner
        self.token_lifetime = token_lifetime
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
        self.public_key = self._key.public_key()
        self._lock = threading.RLock()
        self._installations: dict[int, Installation] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._check_runs: dict[int, CheckRun] = {}
        self._installation_ids = itertools.count(50_000_001)
        self._check_run_ids = itertools.count(1_296_000_001)
        self._suite_ids = itertools.count(1_366_000_001)
        self._suites: dict[tuple[str, str], int] = {}
        self.minted: list[IssuedToken] = []
        self._flask = self._create_app()
        emulator.add_token_source(self.login_for_token)
        emulator.add_extension(self)

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"

    # The world, as tests build it

    def install(self, account: str, repositories: Iterable[str] | None = None) -> Installation:
        """Install the App on `account`: on the named repositories, or on all of them."""
        with self._lock:
            installation = Installation(
                id=next(self._installation_ids),
                account=account,
                repositories=None if repositories is None else {r.lower() for r in repositories},
            )
            self._installations[installation.id] = installation
            return installation

    def uninstall(self, installation_id: int) -> None:
        with self._lock:
            self._installations.pop(installation_id, None)
            for issued in self._tokens.values():
                if issued.installation_id == installation_id:
                    issued.revoked = True

    def revoke(self, token: str) -> None:
        """Make GitHub refuse `token` from now on (401), as after `DELETE /installation/token`."""
        with self._lock:
            self._tokens[token].revoked = True

    def expire(self, token: str) -> None:
        """Let `token` expire now."""
        with self._lock:
            self._tokens[token].expires_at = datetime.now(UTC) - timedelta(seconds=1)

    def valid_tokens(self) -> list[str]:
        with self._lock:
            return [t.token for t in self._tokens.values() if self._valid(t)]

    def sign_jwt(self, claims: dict[str, Any]) -> str:
        """A JWT signed with the App's key, for tests of the JWT checks."""
        return jwt.encode(claims, self._key, algorithm="RS256")

    def check_runs(self, full_name: str, head_sha: str | None = None) -> list[dict[str, Any]]:
        """The check runs of the repository (of one commit), oldest first."""
        with self._lock:
            return [
                run.snapshot() for run in sorted(self._check_runs.values(), key=lambda r: r.id)
                if run.repo.full_name.lower() == full_name.lower() and head_sha in (None, run.head_sha)
            ]

    # Webhook deliveries

    def check_run_payload(
        self, full_name: str, run_id: int, action: str, sender: str, identifier: str | None = None
    ) -> dict[str, Any]:
        """The `check_run` delivery GitHub sends when `sender` re-runs the run or presses a button.

        Built from the recorded delivery (tests/data/github/app/webhooks), with the run, the
        repository, the sender and the installation as the emulator knows them.
        """
        with self.emulator.lock, self._lock:
            repo = self.emulator.repo(full_name)
            run = self._run_or_404(repo, run_id)
            name = "check_run.requested_action" if action == "requested_action" else "check_run.rerequested"
            payload: dict[str, Any] = recorded(f"webhooks/{name}.json")
            payload["action"] = action
            body = self._check_run_body(run)
            suite = {**payload["check_run"]["check_suite"], **self._suite_body(run.repo, run.head_sha)}
            payload["check_run"] = {**payload["check_run"], **body, "check_suite": suite}
            if action == "requested_action":
                payload["requested_action"] = {"identifier": identifier}
            else:
                payload.pop("requested_action", None)
            return self._delivery(payload, repo, sender)

    def check_suite_payload(self, full_name: str, head_sha: str, sender: str) -> dict[str, Any]:
        """The `check_suite` `rerequested` delivery GitHub sends when `sender` re-runs all checks."""
        with self.emulator.lock, self._lock:
            repo = self.emulator.repo(full_name)
            payload: dict[str, Any] = recorded("webhooks/check_suite.rerequested.json")
            payload["check_suite"] = {**payload["check_suite"], **self._suite_body(repo, head_sha)}
            return self._delivery(payload, repo, sender)

    def _suite_body(self, repo: EmulatedRepo, head_sha: str) -> dict[str, Any]:
        suite_id = self._suite(repo, head_sha)
        pulls = self._pulls_at(repo, head_sha)
        return {
            "id": suite_id,
            "node_id": node_id("CS", suite_id),
            "head_sha": head_sha,
            "after": head_sha,
            "head_branch": pulls[0]["head"]["ref"] if pulls else None,
            "url": f"{self.emulator.api_url}/repos/{repo.full_name}/check-suites/{suite_id}",
            "pull_requests": pulls,
            "app": self._app_body(),
        }

    def _delivery(self, payload: dict[str, Any], repo: EmulatedRepo, sender: str) -> dict[str, Any]:
        installation = next((i for i in self._installations.values() if i.covers(repo.full_name)), None)
        payload["repository"] = {**payload["repository"], **self.emulator.shapes.repo(repo)}
        payload["sender"] = self.emulator.shapes.user(sender)
        if self.emulator.is_org(repo.owner):
            payload["organization"] = self.emulator.shapes.org(repo.owner)
        else:
            payload.pop("organization", None)
        if installation is None:
            payload.pop("installation", None)
        else:
            payload["installation"] = {"id": installation.id, "node_id": node_id("IN", installation.id)}
        return payload

    # Tokens

    def login_for_token(self, token: str) -> str | None:
        """The App's bot for a valid installation token; None for anything else."""
        with self._lock:
            issued = self._tokens.get(token)
            return self.bot_login if issued is not None and self._valid(issued) else None

    def _valid(self, issued: IssuedToken) -> bool:
        return (
            not issued.revoked
            and issued.expires_at > datetime.now(UTC)
            and issued.installation_id in self._installations
        )

    def _mint(self, installation: Installation) -> IssuedToken:
        issued = IssuedToken(
            token="ghs_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")[:36],
            installation_id=installation.id,
            expires_at=(datetime.now(UTC) + self.token_lifetime).replace(microsecond=0),
        )
        self._tokens[issued.token] = issued
        self.minted.append(issued)
        return issued

    def _verify_jwt(self) -> None:
        """GitHub's checks of the App's JWT, with GitHub's 401 messages."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                credential.strip(),
                self.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError:
            raise ApiError(401, "A JSON web token could not be decoded") from None
        now = datetime.now(UTC).timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or exp <= now - CLOCK_LEEWAY:
            raise ApiError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which "
                "the assertion expires",
            )
        if exp > now + JWT_MAX_SECONDS + CLOCK_LEEWAY:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
        if not isinstance(iat, int | float) or iat > now + CLOCK_LEEWAY:
            raise ApiError(
                401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
            )
        if str(claims["iss"]) != str(self.app_id):
            raise ApiError(401, "A JSON web token could not be decoded")

    def _installation_token(self) -> IssuedToken | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        with self._lock:
            return self._tokens.get(credential.strip())

    # WSGI

    def handles(self, environ: WSGIEnvironment) -> bool:
        adapter = self._flask.url_map.bind_to_environ(environ)
        try:
            endpoint, _ = adapter.match()
        except (NotFound, MethodNotAllowed):
            return False
        if endpoint == "authenticated_user":
            # Only installation tokens are ours to answer; people's tokens get the built-in answer.
            header = environ.get("HTTP_AUTHORIZATION", "")
            with self._lock:
                return header.partition(" ")[2].strip() in self._tokens
        return True

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._flask(environ, start_response)

    def _create_app(self) -> Flask:
        app = Flask(f"github-app-emulator-{self.app_id}")
        emulator = self.emulator
        shapes = emulator.shapes

        @app.errorhandler(ApiError)
        def api_error(error: ApiError) -> Response:
            body: dict[str, Any] = {"message": error.message}
            if error.errors is not None:
                body["errors"] = error.errors
            body["documentation_url"] = DOCS
            body["status"] = str(error.status)
            return json_response(body, error.status)

        def route(rule: str, methods: tuple[str, ...] = ("GET",)) -> Any:
            def register(view: Any) -> Any:
                def locked(**kwargs: Any) -> Response:
                    with emulator.lock, self._lock:
                        return view(**kwargs)  # type: ignore[no-any-return]

                app.add_url_rule(f"{API_PREFIX}{rule}", endpoint=view.__name__, view_func=locked, methods=list(methods))
                return view

            return register

        def as_bot() -> None:
            """Installation tokens only (check runs can be written by Apps alone)."""
            issued = self._installation_token()
            if issued is None:
                header = request.headers.get("Authorization", "")
                if header and emulator.login_for_token(header.partition(" ")[2].strip()) is not None:
                    raise ApiError(403, "You must authenticate via a GitHub App.")
                raise ApiError(401, "Requires authentication" if not header else "Bad credentials")
            if not self._valid(issued):
                raise ApiError(401, "Bad credentials")
            g.installation = self._installations[issued.installation_id]

        def repo_for_bot(owner: str, name: str) -> EmulatedRepo:
            as_bot()
            repo = emulator.find_repo(f"{owner}/{name}")
            if repo is None or not g.installation.covers(repo.full_name):
                raise ApiError(404, "Not Found")
            return repo

        @route("/app")
        def get_app() -> Response:
            self._verify_jwt()
            return json_response(self._app_body())

        @route("/repos/<owner>/<name>/installation")
        def repo_installation(owner: str, name: str) -> Response:
            self._verify_jwt()
            repo = emulator.find_repo(f"{owner}/{name}")
            found = next(
                (i for i in self._installations.values() if repo is not None and i.covers(repo.full_name)), None
            )
            if found is None:
                raise ApiError(404, "Not Found")
            return json_response(self._installation_body(found))

        @route("/orgs/<org>/installation")
        def org_installation(org: str) -> Response:
            self._verify_jwt()
            if not emulator.is_org(org):
                raise ApiError(404, "Not Found")
            return json_response(self._installation_body(self._account_installation(org)))

        @route("/users/<username>/installation")
        def user_installation(username: str) -> Response:
            # GitHub answers this for an organisation's login too: an organisation is an account.
            self._verify_jwt()
            return json_response(self._installation_body(self._account_installation(username)))

        @route("/app/installations/<int:installation_id>/access_tokens", methods=("POST",))
        def access_tokens(installation_id: int) -> Response:
            self._verify_jwt()
            installation = self._installations.get(installation_id)
            if installation is None:
                raise ApiError(404, "Not Found")
            issued = self._mint(installation)
            body = recorded("rest/installation_access_token.json")
            body.update(token=issued.token, expires_at=iso(issued.expires_at))
            body["repository_selection"] = "all" if installation.repositories is None else "selected"
            return json_response(body, 201)

        @route("/installation/token", methods=("DELETE",))
        def revoke_token() -> Response:
            as_bot()
            issued = self._installation_token()
            assert issued is not None
            issued.revoked = True
            return Response(status=204)

        @route("/user")
        def authenticated_user() -> Response:
            issued = self._installation_token()
            if issued is None or not self._valid(issued):
                raise ApiError(401, "Bad credentials")
            return json_response(recorded("rest/user.installation_token.403.json"), 403)

        @route("/repos/<owner>/<name>/check-runs", methods=("POST",))
        def create_check_run(owner: str, name: str) -> Response:
            repo = repo_for_bot(owner, name)
            data = _body_json()
            run_name = data.get("name")
            if not isinstance(run_name, str) or not run_name.strip():
                raise _invalid("name", "name wasn't supplied.")
            head_sha = data.get("head_sha")
            if not isinstance(head_sha, str) or repo.git.resolve(head_sha) != head_sha:
                raise _invalid("head_sha", f"No commit found for SHA: {head_sha}")
            run = CheckRun(
                id=next(self._check_run_ids),
                repo=repo,
                name=run_name,
                head_sha=head_sha,
                status="queued",
                conclusion=None,
                external_id="",
                details_url=None,
                started_at=datetime.now(UTC).replace(microsecond=0),
                completed_at=None,
                check_suite_id=self._suite(repo, head_sha),
            )
            self._apply(run, data)
            self._check_runs[run.id] = run
            body = self._check_run_body(run)
            return json_response(body, 201, headers={"Location": body["url"]})

        @route("/repos/<owner>/<name>/check-runs/<int:run_id>", methods=("PATCH",))
        def update_check_run(owner: str, name: str, run_id: int) -> Response:
            run = self._run_or_404(repo_for_bot(owner, name), run_id)
            data = _body_json()
            if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
                raise _invalid("name", "name can't be blank")
            if isinstance(data.get("name"), str):
                run.name = data["name"]
            self._apply(run, data)
            run.updates += 1
            return json_response(self._check_run_body(run))

        @route("/repos/<owner>/<name>/check-runs/<int:run_id>")
        def get_check_run(owner: str, name: str, run_id: int) -> Response:
            return json_response(self._check_run_body(self._run_or_404(repo_for_bot(owner, name), run_id)))

        @route("/repos/<owner>/<name>/check-runs/<int:run_id>/annotations")
        def list_annotations(owner: str, name: str, run_id: int) -> Response:
            run = self._run_or_404(repo_for_bot(owner, name), run_id)
            return json_response([{**a, "blob_href": None} for a in run.annotations])

        @route("/repos/<owner>/<name>/commits/<path:ref>/check-runs")
        def list_for_ref(owner: str, name: str, ref: str) -> Response:
            repo = repo_for_bot(owner, name)
            sha = repo.git.resolve(ref)
            if sha is None:
                raise ApiError(422, f"No commit found for SHA: {ref}")
            wanted_name = request.args.get("check_name")
            wanted_status = request.args.get("status")
            runs = [
                run for run in sorted(self._check_runs.values(), key=lambda r: r.id, reverse=True)
                if run.repo is repo and run.head_sha == sha
                and (wanted_name is None or run.name == wanted_name)
                and (wanted_status is None or run.status == wanted_status)
            ]
            if request.args.get("filter", "latest") == "latest":
                # GitHub lists the most recent run of each name unless asked for all.
                latest: dict[str, CheckRun] = {}
                for run in runs:
                    latest.setdefault(run.name, run)
                runs = list(latest.values())
            return json_response({"total_count": len(runs), "check_runs": [self._check_run_body(r) for r in runs]})

        _ = shapes  # shapes serve the other endpoints' bodies; these use the App recordings
        return app

    def _account_installation(self, login: str) -> Installation:
        """The App's installation on an account (an organisation or a user), or GitHub's 404."""
        found = next((i for i in self._installations.values() if i.account.lower() == login.lower()), None)
        if found is None:
            raise ApiError(404, "Not Found")
        return found

    # Check runs

    def _suite(self, repo: EmulatedRepo, head_sha: str) -> int:
        key = (repo.full_name.lower(), head_sha)
        if key not in self._suites:
            self._suites[key] = next(self._suite_ids)
        return self._suites[key]

    def _run_or_404(self, repo: EmulatedRepo, run_id: int) -> CheckRun:
        run = self._check_runs.get(run_id)
        if run is None or run.repo is not repo:
            raise ApiError(404, "Not Found")
        return run

    def _apply(self, run: CheckRun, data: dict[str, Any]) -> None:
        """Validate a create or update body as GitHub does, then lay it over the run."""
        status = data.get("status")
        conclusion = data.get("conclusion")
        if status is not None and status not in STATUSES:
            if status in ACTIONS_ONLY_STATUSES:
                raise _invalid("status", f"Invalid status: {status} is only available to GitHub Actions")
            raise _invalid("status", "status is not included in the list")
        if conclusion is not None and conclusion not in CONCLUSIONS:
            raise _invalid("conclusion", "conclusion is not included in the list")
        if status == "completed" and conclusion is None and run.conclusion is None:
            raise _invalid("conclusion", "Conclusion required if status is completed")
        output = data.get("output")
        annotations: list[dict[str, Any]] = []
        if output is not None:
            if not isinstance(output, dict) or not output.get("title") or not isinstance(output.get("summary"), str):
                raise _invalid("output", "output must have a title and a summary")
            for key in ("summary", "text"):
                value = output.get(key)
                if isinstance(value, str) and len(value) > OUTPUT_MAX_CHARS:
                    raise _invalid("output", f"Only {OUTPUT_MAX_CHARS} characters are allowed in {key}.")
            annotations = output.get("annotations") or []
            if len(annotations) > ANNOTATIONS_PER_REQUEST:
                raise _invalid("output", f"Only {ANNOTATIONS_PER_REQUEST} annotations are allowed per request.")
            for annotation in annotations:
                _check_annotation(annotation)
        actions = data.get("actions")
        if actions is not None:
            if not isinstance(actions, list) or len(actions) > ACTIONS_MAX:
                raise _invalid("actions", f"Only {ACTIONS_MAX} actions are allowed per check run.")
            for action in actions:
                _check_action(action)
        # Valid: apply it.
        for key in ("external_id", "details_url"):
            if isinstance(data.get(key), str):
                setattr(run, key, data[key])
        if conclusion is not None:
            # A conclusion completes the run, whatever status says.
            run.conclusion, run.status = conclusion, "completed"
            run.completed_at = _moment(data.get("completed_at")) or datetime.now(UTC).replace(microsecond=0)
        elif status is not None:
            run.status = status
        if data.get("started_at"):
            run.started_at = _moment(data["started_at"])
        if output is not None:
            run.title, run.summary, run.text = output["title"], output["summary"], output.get("text")
            # Annotations accumulate over updates: GitHub appends each request's batch.
            run.annotations.extend(copy.deepcopy(annotations))
        if actions is not None:
            run.actions = [dict(a) for a in actions]

    def _check_run_body(self, run: CheckRun) -> dict[str, Any]:
        template = recorded("rest/check_run.json")
        repo_api = f"{self.emulator.api_url}/repos/{run.repo.full_name}"
        body = dict(template)
        body.update(
            id=run.id,
            node_id=node_id("CR", run.id),
            head_sha=run.head_sha,
            external_id=run.external_id,
            url=f"{repo_api}/check-runs/{run.id}",
            html_url=f"{run.repo.html_url}/runs/{run.id}",
            details_url=run.details_url or run.repo.html_url,
            status=run.status,
            conclusion=run.conclusion,
            started_at=iso(run.started_at),
            completed_at=iso(run.completed_at),
            output={
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{repo_api}/check-runs/{run.id}/annotations",
            },
            name=run.name,
            check_suite={"id": run.check_suite_id},
            app=self._app_body(),
            pull_requests=self._pulls_at(run.repo, run.head_sha),
        )
        return body

    def _pulls_at(self, repo: EmulatedRepo, head_sha: str) -> list[dict[str, Any]]:
        """The open pull requests with this head, as check runs list them (none from forks, as on GitHub)."""
        return [
            {
                "url": f"{self.emulator.api_url}/repos/{repo.full_name}/pulls/{pull.number}",
                "id": pull.id,
                "number": pull.number,
                "head": {"ref": pull.head_ref, "sha": pull.head_sha,
                         "repo": {"id": pull.head_repo.id, "url": pull.head_repo.url, "name": pull.head_repo.name}},
                "base": {"ref": pull.base_ref, "sha": pull.base_sha,
                         "repo": {"id": repo.id, "url": repo.url, "name": repo.name}},
            }
            for pull in sorted(repo.pulls.values(), key=lambda p: p.number)
            if pull.state == "open" and pull.head_sha == head_sha and pull.head_repo is repo
        ]

    def _app_body(self) -> dict[str, Any]:
        body: dict[str, Any] = rehome(recorded("rest/app.json"), self._rehoming())
        owner = self.emulator.shapes.user(self.owner)
        body.update(
            id=self.app_id,
            slug=self.slug,
            node_id=node_id("A", self.app_id),
            name=self.name,
            owner=owner,
            html_url=f"{self.emulator.base_url}/apps/{self.slug}",
            installations_count=len(self._installations),
        )
        body["permissions"] = {
            "checks": "write", "contents": "read", "issues": "write", "metadata": "read",
            "pull_requests": "write", "statuses": "write",
        }
        body["events"] = ["check_run", "check_suite", "issue_comment", "pull_request", "push"]
        return body

    def _installation_body(self, installation: Installation) -> dict[str, Any]:
        body: dict[str, Any] = recorded("rest/repo_installation.json")
        account = self.emulator.shapes.user(installation.account)
        body.update(
            id=installation.id,
            account=account,
            repository_selection="all" if installation.repositories is None else "selected",
            access_tokens_url=f"{self.emulator.api_url}/app/installations/{installation.id}/access_tokens",
            repositories_url=f"{self.emulator.api_url}/installation/repositories",
            html_url=f"{self.emulator.base_url}/settings/installations/{installation.id}",
            app_id=self.app_id,
            app_slug=self.slug,
            target_id=account.get("id"),
            target_type=account.get("type", "User"),
        )
        return body

    def _rehoming(self) -> list[tuple[str, str]]:
        return [(GITHUB_API, self.emulator.api_url), ("https://github.com", self.emulator.base_url)]


def _body_json() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "Problems parsing JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Problems parsing JSON")
    return data


def _invalid(field_name: str, message: str) -> ApiError:
    return ApiError(
        422, "Validation Failed", [{"resource": "CheckRun", "code": "custom", "field": field_name, "message": message}]
    )


def _check_annotation(annotation: Any) -> None:
    if not isinstance(annotation, dict):
        raise _invalid("annotations", "annotations must be objects")
    for key in ("path", "start_line", "end_line", "annotation_level", "message"):
        if annotation.get(key) in (None, ""):
            raise _invalid("annotations", f"annotation is missing {key}")
    if annotation["annotation_level"] not in ANNOTATION_LEVELS:
        raise _invalid("annotations", "annotation_level is not included in the list")
    if ("start_column" in annotation or "end_column" in annotation) and annotation["start_line"] != annotation[
        "end_line"
    ]:
        raise _invalid("annotations", "start_column and end_column are only allowed when start_line equals end_line")


def _check_action(action: Any) -> None:
    if not isinstance(action, dict):
        raise _invalid("actions", "actions must be objects")
    for key, limit in (("label", 20), ("description", 40), ("identifier", 20)):
        value = action.get(key)
        if not isinstance(value, str) or not value:
            raise _invalid("actions", f"action is missing {key}")
        if len(value) > limit:
            raise _invalid("actions", f"{key} is too long (maximum is {limit} characters)")


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("started_at", f"{value} is not an ISO 8601 timestamp") from None
