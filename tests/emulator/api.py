"""The emulator's REST and GraphQL endpoints: GitHub's routes, status codes and error bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from flask import Flask, Response, g, request
from werkzeug.exceptions import InternalServerError

from tests.emulator.state import Comment, EmulatedIssue, EmulatedPull, EmulatedRepo, Team, now

if TYPE_CHECKING:
    from tests.emulator.server import GitHubEmulator

T = TypeVar("T")

DOCS = "https://docs.github.com/rest"
PER_PAGE_DEFAULT = 30
PER_PAGE_MAX = 100
FILES_MAX = 3000
"""GitHub lists at most 3000 files of a pull request."""

_TOO_LONG = {
    "message": "Validation Failed",
    "errors": [
        {
            "resource": "IssueComment",
            "code": "unprocessable",
            "field": "data",
            "message": "Body is too long (maximum is 65536 characters)",
        }
    ],
    "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
}


class ApiError(Exception):
    """Ends a request with GitHub's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        *,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        # A recorded body to answer with verbatim instead of the generic shape.
        self.body = body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        headers=headers or {},
        content_type="application/json; charset=utf-8",
    )


def _validation(resource: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        [{"resource": resource, "code": "custom", "field": field, "message": message}],
    )


def create_api_app(emulator: GitHubEmulator) -> Flask:
    """The Flask app answering `/api/v3/...` and `/api/graphql` for `emulator`."""
    from tests.emulator.server import (
        API_PREFIX,
        COMMENT_MAX_CHARS,
        GRAPHQL_PATH,
        REACTIONS,
        STATUS_STATES,
        MergeRefused,
    )

    app = Flask("github-emulator")
    shapes = emulator.shapes

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        if error.body is not None:
            return json_response(error.body, error.status)
        body: dict[str, Any] = {"message": error.message}
        if error.errors is not None:
            body["errors"] = error.errors
        body["documentation_url"] = DOCS
        body["status"] = str(error.status)
        return json_response(body, error.status)

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return json_response({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)

    @app.errorhandler(InternalServerError)
    def server_error(_error: InternalServerError) -> Response:
        # Flask has logged the traceback; the client gets GitHub's shape of a 500.
        return json_response({"message": "Server Error", "documentation_url": DOCS, "status": "500"}, 500)

    @app.errorhandler(405)
    def method_not_allowed(_error: Exception) -> Response:
        return json_response({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)

    @app.before_request
    def authenticate() -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if not header:
            raise ApiError(401, "Requires authentication")
        login = emulator.login_for_token(credential.strip()) if scheme.lower() in ("token", "bearer") else None
        if login is None:
            raise ApiError(401, "Bad credentials")
        g.login = login
        return None

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        used = emulator.request_count + 1
        response.headers["X-GitHub-Media-Type"] = "github.v3; format=json"
        response.headers["X-RateLimit-Limit"] = "5000"
        response.headers["X-RateLimit-Remaining"] = str(max(5000 - used, 1))
        response.headers["X-RateLimit-Reset"] = str(emulator.rate_limit_reset)
        response.headers["X-RateLimit-Used"] = str(used)
        response.headers["X-RateLimit-Resource"] = "graphql" if request.path == GRAPHQL_PATH else "core"
        return response

    def body_json() -> dict[str, Any]:
        raw = request.get_data(cache=True)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise ApiError(400, "Problems parsing JSON") from error
        if not isinstance(data, dict):
            raise ApiError(400, "Problems parsing JSON")
        return data

    def repo_or_404(owner: str, name: str) -> EmulatedRepo:
        repo = emulator.find_repo(f"{owner}/{name}")
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def pull_or_404(repo: EmulatedRepo, number: int) -> EmulatedPull:
        pull = repo.pulls.get(number)
        if pull is None:
            raise ApiError(404, "Not Found")
        return pull

    def issue_or_pull_or_404(repo: EmulatedRepo, number: int) -> EmulatedIssue | EmulatedPull:
        """Issues and pull requests share numbers, and the issue endpoints serve both."""
        found = repo.issues.get(number) or repo.pulls.get(number)
        if found is None:
            raise ApiError(404, "Not Found")
        return found

    def issue_body(found: EmulatedIssue | EmulatedPull) -> dict[str, Any]:
        return shapes.plain_issue(found) if isinstance(found, EmulatedIssue) else shapes.issue(found)

    def comment_or_404(repo: EmulatedRepo, comment_id: int) -> Comment:
        comment = repo.comments.get(comment_id)
        if comment is None:
            raise ApiError(404, "Not Found")
        return comment

    def link_base() -> str:
        """The URL later pages are linked at: GitHub names the repository by id there."""
        match = re.match(rf"^{API_PREFIX}/repos/([^/]+)/([^/]+)(/.*)?$", request.path)
        if match:
            repo = emulator.find_repo(f"{match[1]}/{match[2]}")
            if repo is not None:
                return f"{emulator.api_url}/repositories/{repo.id}{match[3] or ''}"
        return f"{emulator.base_url}{request.path}"

    def paginate(items: Sequence[T]) -> tuple[Sequence[T], dict[str, str]]:
        """One page of `items` per `page`/`per_page`, with GitHub's `Link` header."""
        try:
            per_page = min(max(int(request.args.get("per_page", PER_PAGE_DEFAULT)), 1), PER_PAGE_MAX)
        except ValueError:
            per_page = PER_PAGE_DEFAULT
        try:
            page = max(int(request.args.get("page", 1)), 1)
        except ValueError:
            page = 1
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        other = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "per_page")]
        base = link_base()

        def url(number: int) -> str:
            return f"{base}?{urlencode([*other, ('page', number), ('per_page', per_page)])}"

        links = []
        if page > 1:
            links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
        if page < last:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(last)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def locked(view: Callable[..., Response]) -> Callable[..., Response]:
        def run(**kwargs: Any) -> Response:
            with emulator.lock:
                return view(**kwargs)

        run.__name__ = view.__name__
        return run

    def route(
        rule: str, methods: tuple[str, ...] = ("GET",)
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        def register(view: Callable[..., Response]) -> Callable[..., Response]:
            app.add_url_rule(f"{API_PREFIX}{rule}", view_func=locked(view), methods=list(methods))
            return view

        return register

    # Repositories and users

    @route("/repos/<owner>/<name>")
    def get_repo(owner: str, name: str) -> Response:
        return json_response(shapes.repo(repo_or_404(owner, name)))

    @route("/users/<login>")
    def get_user(login: str) -> Response:
        return json_response(shapes.user(login))

    @route("/user")
    def get_authenticated_user() -> Response:
        return json_response(shapes.user(g.login))

    @route("/orgs/<org>")
    def get_org(org: str) -> Response:
        if not emulator.is_org(org):
            raise ApiError(404, "Not Found")
        return json_response(shapes.org(org))

    # Pull requests

    @route("/repos/<owner>/<name>/pulls/<int:number>")
    def get_pull(owner: str, name: str, number: int) -> Response:
        return json_response(shapes.pull(pull_or_404(repo_or_404(owner, name), number)))

    @route("/repos/<owner>/<name>/pulls/<int:number>/files")
    def get_pull_files(owner: str, name: str, number: int) -> Response:
        repo = repo_or_404(owner, name)
        pull = pull_or_404(repo, number)
        entries = emulator.pull_files(pull)[:FILES_MAX]
        page, headers = paginate(entries)
        blobs = _blob_shas(repo, pull.head_sha, [e.filename for e in page if e.status != "removed"])
        body = [shapes.file(repo, pull.head_sha, e, blobs.get(e.filename)) for e in page]
        return json_response(body, headers=headers)

    @route("/repos/<owner>/<name>/pulls/<int:number>/reviews")
    def get_reviews(owner: str, name: str, number: int) -> Response:
        pull = pull_or_404(repo_or_404(owner, name), number)
        page, headers = paginate(pull.reviews)
        return json_response([shapes.review(pull, r) for r in page], headers=headers)

    @route("/repos/<owner>/<name>/pulls/<int:number>/reviews/<int:review_id>/dismissals", methods=("PUT",))
    def dismiss_review(owner: str, name: str, number: int, review_id: int) -> Response:
        pull = pull_or_404(repo_or_404(owner, name), number)
        message = body_json().get("message")
        if not isinstance(message, str) or not message:
            raise _validation("PullRequestReview", "message", "missing_field")
        try:
            review = emulator.dismiss_review(pull, review_id, g.login, message)
        except MergeRefused as refused:
            raise ApiError(refused.status, refused.message) from refused
        return json_response(shapes.review(pull, review))

    @route("/repos/<owner>/<name>/pulls/<int:number>/merge")
    def get_merged(owner: str, name: str, number: int) -> Response:
        pull = pull_or_404(repo_or_404(owner, name), number)
        if not pull.merged:
            raise ApiError(404, "Not Found")
        return Response(status=204)

    @route("/repos/<owner>/<name>/pulls/<int:number>/merge", methods=("PUT",))
    def put_merge(owner: str, name: str, number: int) -> Response:
        pull = pull_or_404(repo_or_404(owner, name), number)
        data = body_json()
        try:
            sha = emulator.merge(
                pull,
                g.login,
                method=str(data.get("merge_method") or "merge"),
                sha=data.get("sha"),
                title=data.get("commit_title"),
                message=data.get("commit_message"),
            )
        except MergeRefused as refused:
            raise ApiError(refused.status, refused.message) from refused
        return json_response(shapes.merge_result(sha))

    # Issues and comments

    @route("/repos/<owner>/<name>/issues")
    def list_issues(owner: str, name: str) -> Response:
        """Issues and pull requests, newest first, as GitHub lists them; `state` and `labels` filter."""
        repo = repo_or_404(owner, name)
        state = request.args.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _validation("Issue", "state", "state is not included in the list")
        wanted = [label.strip() for label in request.args.get("labels", "").split(",") if label.strip()]
        found: list[EmulatedIssue | EmulatedPull] = [*repo.issues.values(), *repo.pulls.values()]
        found = [
            item for item in found
            if state in ("all", item.state)
            and all(label in (item.labels if isinstance(item, EmulatedIssue) else []) for label in wanted)
        ]
        found.sort(key=lambda item: item.number, reverse=request.args.get("direction", "desc") == "desc")
        page, headers = paginate(found)
        return json_response([issue_body(item) for item in page], headers=headers)

    @route("/repos/<owner>/<name>/issues", methods=("POST",))
    def create_issue(owner: str, name: str) -> Response:
        repo = repo_or_404(owner, name)
        data = body_json()
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _validation("Issue", "title", "title wasn't supplied.")
        body = data.get("body") or ""
        if not isinstance(body, str) or len(body) > COMMENT_MAX_CHARS:
            raise ApiError(422, "Validation Failed", [{"resource": "Issue", "code": "custom", "field": "body",
                                                     "message": "body is too long (maximum is 65536 characters)"}])
        labels = data.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise _validation("Issue", "labels", "labels must be a list of label names")
        issue = emulator.create_issue(repo, title, body, labels, author=g.login)
        payload = shapes.plain_issue(issue)
        return json_response(payload, 201, headers={"Location": payload["url"]})

    @route("/repos/<owner>/<name>/issues/<int:number>")
    def get_issue(owner: str, name: str, number: int) -> Response:
        return json_response(issue_body(issue_or_pull_or_404(repo_or_404(owner, name), number)))

    @route("/repos/<owner>/<name>/issues/<int:number>", methods=("PATCH",))
    def edit_issue(owner: str, name: str, number: int) -> Response:
        found = issue_or_pull_or_404(repo_or_404(owner, name), number)
        data = body_json()
        state = data.get("state")
        if state is not None and state not in ("open", "closed"):
            raise _validation("Issue", "state", "state is not included in the list")
        body = data.get("body")
        if isinstance(body, str) and len(body) > COMMENT_MAX_CHARS:
            raise ApiError(422, "Validation Failed", [{"resource": "Issue", "code": "custom", "field": "body",
                                                     "message": "body is too long (maximum is 65536 characters)"}])
        if isinstance(data.get("title"), str):
            found.title = data["title"]
        if body is not None:
            found.body = str(body)
        if isinstance(found, EmulatedIssue):
            if isinstance(data.get("labels"), list):
                found.labels = [str(label) for label in data["labels"]]
            if state is not None:
                emulator.set_issue_state(found, str(state), g.login, data.get("state_reason"))
        elif state == "closed":
            emulator.close_pull(found.full_name, found.number)
        elif state == "open" and found.state == "closed":
            emulator.reopen_pull(found.full_name, found.number)
        found.updated_at = now()
        return json_response(issue_body(found))

    @route("/repos/<owner>/<name>/issues/<int:number>/labels", methods=("POST",))
    def add_labels(owner: str, name: str, number: int) -> Response:
        repo = repo_or_404(owner, name)
        found = issue_or_pull_or_404(repo, number)
        labels = body_json().get("labels")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise _validation("Label", "labels", "labels must be a list of label names")
        if isinstance(found, EmulatedIssue):
            found.labels = list(dict.fromkeys([*found.labels, *labels]))
        else:
            emulator.label_pull(found.full_name, found.number, *labels)
        names = found.labels
        return json_response([shapes.label(repo, label) for label in names])

    @route("/repos/<owner>/<name>/issues/<int:number>/comments")
    def list_comments(owner: str, name: str, number: int) -> Response:
        repo = repo_or_404(owner, name)
        issue_or_pull_or_404(repo, number)
        comments = sorted((c for c in repo.comments.values() if c.issue_number == number), key=lambda c: c.id)
        page, headers = paginate(comments)
        return json_response([shapes.comment(repo, c) for c in page], headers=headers)

    def checked_body(data: dict[str, Any]) -> str:
        body = data.get("body")
        if not isinstance(body, str) or not body:
            raise _validation("IssueComment", "body", "body wasn't supplied.")
        if len(body) > COMMENT_MAX_CHARS:
            raise _TooLong()
        return body

    @route("/repos/<owner>/<name>/issues/<int:number>/comments", methods=("POST",))
    def create_comment(owner: str, name: str, number: int) -> Response:
        repo = repo_or_404(owner, name)
        issue_or_pull_or_404(repo, number)
        comment = emulator.create_comment(repo, number, checked_body(body_json()), g.login)
        body = shapes.comment(repo, comment)
        return json_response(body, 201, headers={"Location": body["url"]})

    @route("/repos/<owner>/<name>/issues/comments/<int:comment_id>")
    def get_comment(owner: str, name: str, comment_id: int) -> Response:
        repo = repo_or_404(owner, name)
        return json_response(shapes.comment(repo, comment_or_404(repo, comment_id)))

    @route("/repos/<owner>/<name>/issues/comments/<int:comment_id>", methods=("PATCH",))
    def edit_comment(owner: str, name: str, comment_id: int) -> Response:
        repo = repo_or_404(owner, name)
        comment = comment_or_404(repo, comment_id)
        comment.body = checked_body(body_json())
        comment.updated_at = now()
        return json_response(shapes.comment(repo, comment))

    @route("/repos/<owner>/<name>/issues/comments/<int:comment_id>/reactions", methods=("POST",))
    def create_reaction(owner: str, name: str, comment_id: int) -> Response:
        repo = repo_or_404(owner, name)
        comment = comment_or_404(repo, comment_id)
        content = body_json().get("content")
        if content not in REACTIONS:
            raise _validation("Reaction", "content", "content is not included in the list")
        reaction, created = emulator.add_reaction(comment, g.login, str(content))
        return json_response(shapes.reaction(reaction), 201 if created else 200)

    @route("/repos/<owner>/<name>/issues/comments/<int:comment_id>/reactions")
    def list_reactions(owner: str, name: str, comment_id: int) -> Response:
        comment = comment_or_404(repo_or_404(owner, name), comment_id)
        page, headers = paginate(comment.reactions)
        return json_response([shapes.reaction(r) for r in page], headers=headers)

    # Branches, commits and statuses

    @route("/repos/<owner>/<name>/branches/<path:branch>")
    def get_branch(owner: str, name: str, branch: str) -> Response:
        repo = repo_or_404(owner, name)
        sha = repo.git.resolve(f"refs/heads/{branch}")
        info = repo.git.commit_info(sha) if sha else None
        if info is None:
            raise ApiError(404, "Branch not found")
        return json_response(shapes.branch(repo, branch, info))

    @route("/repos/<owner>/<name>/git/refs/<path:ref>", methods=("DELETE",))
    def delete_ref(owner: str, name: str, ref: str) -> Response:
        repo = repo_or_404(owner, name)
        if not ref.startswith("heads/"):
            raise ApiError(422, "Reference does not exist")
        try:
            emulator.delete_branch(repo.full_name, ref.removeprefix("heads/"))
        except MergeRefused as refused:
            raise ApiError(refused.status, refused.message) from refused
        return Response(status=204)

    @route("/repos/<owner>/<name>/statuses/<sha>", methods=("POST",))
    def create_status(owner: str, name: str, sha: str) -> Response:
        repo = repo_or_404(owner, name)
        data = body_json()
        full_sha = repo.git.resolve(sha) if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        if full_sha is None:
            raise ApiError(422, f"No commit found for SHA: {sha}")
        state = data.get("state")
        if state not in STATUS_STATES:
            raise _validation("Status", "state", "state is not included in the list")
        status = emulator.create_status(
            repo,
            full_sha,
            str(state),
            str(data.get("context") or "default"),
            data.get("description"),
            data.get("target_url"),
            g.login,
        )
        body = shapes.status(repo, status)
        return json_response(body, 201, headers={"Location": body["url"]})

    @route("/repos/<owner>/<name>/commits/<path:rest>")
    def commits(owner: str, name: str, rest: str) -> Response:
        repo = repo_or_404(owner, name)
        ref, suffix = rest, ""
        for ending in ("/status", "/statuses"):
            if rest.endswith(ending):
                ref, suffix = rest[: -len(ending)], ending
        sha = repo.git.resolve(ref) or repo.git.resolve(f"refs/heads/{ref}")
        if sha is None:
            raise ApiError(422 if suffix == "" else 404, f"No commit found for SHA: {ref}")
        if suffix == "/status":
            return json_response(shapes.combined_status(repo, sha, emulator.latest_statuses(repo, sha)))
        if suffix == "/statuses":
            all_statuses = list(reversed(repo.statuses.get(sha, [])))
            page, headers = paginate(all_statuses)
            return json_response([shapes.status(repo, s) for s in page], headers=headers)
        info = repo.git.commit_info(sha)
        assert info is not None
        parent = info.parents[0] if info.parents else _EMPTY_TREE
        entries = repo.git.diff(parent, sha, three_dot=False)
        blobs = _blob_shas(repo, sha, [e.filename for e in entries if e.status != "removed"])
        files = [shapes.file(repo, sha, e, blobs.get(e.filename)) for e in entries]
        return json_response(shapes.commit(repo, info, files))

    # Collaborators and teams

    @route("/repos/<owner>/<name>/collaborators/<user>/permission")
    def get_permission(owner: str, name: str, user: str) -> Response:
        repo = repo_or_404(owner, name)
        role = emulator.role(repo, user)
        return json_response(shapes.permission(repo, user, role or "none"))

    @route("/repos/<owner>/<name>/collaborators/<user>")
    def is_collaborator(owner: str, name: str, user: str) -> Response:
        role = emulator.role(repo_or_404(owner, name), user)
        if role in (None, "none"):
            raise ApiError(404, "Not Found")
        return Response(status=204)

    def team_or_404(team: Team | None) -> Team:
        if team is None:
            raise ApiError(404, "Not Found")
        return team

    def membership(team: Team, user: str) -> Response:
        found = team.memberships.get(user.lower())
        if found is None:
            raise ApiError(404, "Not Found")
        return json_response(shapes.membership(team, user, found.state, found.role))

    def member(team: Team, user: str) -> Response:
        found = team.memberships.get(user.lower())
        if found is None or found.state != "active":
            raise ApiError(404, "Not Found")
        return Response(status=204)

    @route("/orgs/<org>/teams/<slug>")
    def get_team(org: str, slug: str) -> Response:
        return json_response(shapes.team(team_or_404(emulator.find_team(org, slug))))

    @route("/orgs/<org>/teams/<slug>/memberships/<user>")
    def team_membership_by_slug(org: str, slug: str, user: str) -> Response:
        return membership(team_or_404(emulator.find_team(org, slug)), user)

    @route("/orgs/<org>/teams/<slug>/members/<user>")
    def team_member_by_slug(org: str, slug: str, user: str) -> Response:
        return member(team_or_404(emulator.find_team(org, slug)), user)

    def team_by_ids(org_id: int | None, team_id: int) -> Team:
        team = team_or_404(emulator.find_team_by_id(team_id))
        if org_id is not None and team.org_id != org_id:
            raise ApiError(404, "Not Found")
        return team

    @route("/organizations/<int:org_id>/team/<int:team_id>")
    def get_team_by_id(org_id: int, team_id: int) -> Response:
        return json_response(shapes.team(team_by_ids(org_id, team_id)))

    @route("/organizations/<int:org_id>/team/<int:team_id>/memberships/<user>")
    def team_membership_by_id(org_id: int, team_id: int, user: str) -> Response:
        return membership(team_by_ids(org_id, team_id), user)

    @route("/organizations/<int:org_id>/team/<int:team_id>/members/<user>")
    def team_member_by_id(org_id: int, team_id: int, user: str) -> Response:
        return member(team_by_ids(org_id, team_id), user)

    @route("/teams/<int:team_id>/memberships/<user>")
    def legacy_team_membership(team_id: int, user: str) -> Response:
        return membership(team_by_ids(None, team_id), user)

    @route("/teams/<int:team_id>/members/<user>")
    def legacy_team_member(team_id: int, user: str) -> Response:
        return member(team_by_ids(None, team_id), user)

    # GraphQL

    def graphql() -> Response:
        data = body_json()
        query = str(data.get("query", ""))
        variables = data.get("variables") or {}
        match = re.search(r"\b(minimizeComment|unminimizeComment)\s*\(", query)
        if match is None:
            return graphql_error("The GitHub emulator only answers minimizeComment and unminimizeComment.")
        mutation = match[1]
        given = variables.get("input") if isinstance(variables, dict) else None
        if not isinstance(given, dict):
            return graphql_error("Variable $input of type MinimizeCommentInput! was provided invalid value")
        subject = str(given.get("subjectId", ""))
        classifier = given.get("classifier")
        if mutation == "minimizeComment" and classifier not in _CLASSIFIERS:
            return graphql_error(
                f"Argument 'classifier' on InputObject 'MinimizeCommentInput' has an invalid value "
                f"({classifier}). Expected type 'ReportedContentClassifiers!'."
            )
        comment = emulator.find_comment_by_node(subject)
        if comment is None:
            return json_response(
                {
                    "data": {mutation: None},
                    "errors": [
                        {
                            "type": "NOT_FOUND",
                            "path": [mutation],
                            "locations": [{"line": 1, "column": 60}],
                            "message": f"Could not resolve to a node with the global id of '{subject}'",
                        }
                    ],
                }
            )
        comment.minimized = mutation == "minimizeComment"
        comment.minimized_classifier = str(classifier) if comment.minimized else None
        return json_response(shapes.minimize_result(mutation, comment.minimized))

    def graphql_error(message: str) -> Response:
        # GraphQL reports errors with 200 and an `errors` list, as GitHub does.
        return json_response({"errors": [{"message": message}]})

    app.add_url_rule(GRAPHQL_PATH, view_func=locked(graphql), methods=["POST"])
    return app


_CLASSIFIERS = ("SPAM", "ABUSE", "OFF_TOPIC", "OUTDATED", "DUPLICATE", "RESOLVED")
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class _TooLong(ApiError):
    """GitHub's real answer to a comment body over 65,536 characters."""

    def __init__(self) -> None:
        super().__init__(422, "Validation Failed", body=_TOO_LONG)


def _blob_shas(repo: EmulatedRepo, commit: str, paths: list[str]) -> dict[str, str]:
    """{path: blob sha} of the files at `commit` (one `git ls-tree` for the whole page)."""
    if not paths:
        return {}
    wanted = set(paths)
    out = repo.git.git("ls-tree", "-r", "-z", commit).stdout.decode()
    shas: dict[str, str] = {}
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        if path in wanted:
            shas[path] = meta.split()[2]
    return shas
