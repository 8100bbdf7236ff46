"""The emulator's REST API v4 endpoints: GitLab's routes, status codes, pagination and error bodies.

The server has already replaced a URL-encoded project or group path with its numeric id, so the
routes here take `<int:project_id>`; id 0 names nothing and answers GitLab's 404.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from tests.gitlab_emulator.state import NOTE_MAX_CHARS, AwardEmoji, Issue, MergeRequest, Note, Project, Refused, now

if TYPE_CHECKING:
    from tests.gitlab_emulator.server import GitLabEmulator

T = TypeVar("T")

PER_PAGE_DEFAULT = 20
PER_PAGE_MAX = 100


class ApiError(Exception):
    """Ends a request with GitLab's `{"message": …}` body."""

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def create_api_app(emulator: GitLabEmulator) -> Flask:
    """The Flask app answering `/api/v4/...` for `emulator`."""
    app = Flask("gitlab-emulator")
    shapes = emulator.shapes

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return json_response({"message": error.message}, error.status)

    @app.errorhandler(Refused)
    def refused(error: Refused) -> Response:
        return json_response({"message": error.message}, error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        if code == 405:
            return json_response({"error": "405 Method Not Allowed"}, 405)
        if code == 404:
            return json_response({"error": "404 Not Found"}, 404)
        return json_response({"message": f"{code} {error.name}"}, code)

    @app.before_request
    def authenticate() -> None:
        token = request.headers.get("PRIVATE-TOKEN", "")
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if not token and scheme.lower() == "bearer":
            token = bearer.strip()
        user = emulator.user_for_token(token) if token else None
        if user is None:
            raise ApiError(401, "401 Unauthorized")
        g.user = user

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        # GitLab.com's documented rate-limit headers; the emulator never runs out.
        response.headers["RateLimit-Limit"] = "2000"
        response.headers["RateLimit-Remaining"] = "1999"
        response.headers["RateLimit-Observed"] = "1"
        return response

    def body() -> dict[str, Any]:
        """The request's parameters: a JSON or form body, then the query string (GitLab takes all)."""
        data: dict[str, Any] = dict(request.args.items())
        raw = request.get_data(cache=True)
        if request.is_json and raw:
            try:
                parsed = json.loads(raw)
            except ValueError as error:
                raise ApiError(400, "400 Bad request - JSON parse error") from error
            if not isinstance(parsed, dict):
                raise ApiError(400, "400 Bad request")
            data.update(parsed)
        else:
            data.update(request.form.items())
        return data

    def project_or_404(project_id: int) -> Project:
        project = emulator.find_project(str(project_id)) if project_id else None
        if project is None or (project.visibility == "private" and emulator.access_level(project, g.user) is None):
            raise ApiError(404, "404 Project Not Found")
        return project

    def mr_or_404(project_id: int, iid: int) -> MergeRequest:
        mr = project_or_404(project_id).merge_requests.get(iid)
        if mr is None:
            raise ApiError(404, "404 Not found")
        return mr

    def note_or_404(mr: MergeRequest, note_id: int) -> Note:
        note = mr.notes.get(note_id)
        if note is None:
            raise ApiError(404, "404 Note Not Found")
        return note

    def issue_or_404(project: Project, iid: int) -> Issue:
        issue = project.issues.get(iid)
        if issue is None:
            raise ApiError(404, "404 Issue Not Found")
        return issue

    def require_write(project: Project) -> None:
        """Notes, emoji and issues need at least the Reporter role."""
        level = emulator.access_level(project, g.user)
        if level is None or level < 20:
            raise ApiError(403, "403 Forbidden")

    def paginate(items: Sequence[T]) -> tuple[Sequence[T], dict[str, str]]:
        """One page of `items` with GitLab's offset pagination headers (api/rest/_index.md)."""
        try:
            per_page = min(max(int(request.args.get("per_page", PER_PAGE_DEFAULT)), 1), PER_PAGE_MAX)
        except ValueError:
            per_page = PER_PAGE_DEFAULT
        try:
            page = max(int(request.args.get("page", 1)), 1)
        except ValueError:
            page = 1
        total_pages = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        others = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "per_page")]
        base = f"{emulator.base_url}{request.path}"

        def link(number: int) -> str:
            return f"{base}?{urlencode([*others, ('page', number), ('per_page', per_page)])}"

        links = []
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        links.append(f'<{link(1)}>; rel="first"')
        links.append(f'<{link(total_pages)}>; rel="last"')
        headers = {
            "Link": ", ".join(links),
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
        }
        return chunk, headers

    def listed(items: Sequence[Any], render: Any) -> Response:
        chunk, headers = paginate(items)
        return json_response([render(item) for item in chunk], headers=headers)

    # Users

    @app.get("/api/v4/user")
    def current_user() -> Response:
        return json_response(shapes.current_user(g.user))

    @app.get("/api/v4/users")
    def users() -> Response:
        username = request.args.get("username")
        found = emulator.find_user(username) if username else None
        return listed([found] if found else [], shapes.user_basic)

    # Projects, members, groups

    @app.get("/api/v4/projects/<int:project_id>")
    def get_project(project_id: int) -> Response:
        return json_response(shapes.project(project_or_404(project_id)))

    @app.get("/api/v4/projects/<int:project_id>/members/all/<int:user_id>")
    def project_member(project_id: int, user_id: int) -> Response:
        project = project_or_404(project_id)
        user = emulator.find_user_by_id(user_id)
        level = emulator.access_level(project, user) if user else None
        if user is None or level is None:
            raise ApiError(404, "404 Not found")
        return json_response(shapes.member(user, level))

    @app.get("/api/v4/groups/<int:group_id>/members/all/<int:user_id>")
    def group_member(group_id: int, user_id: int) -> Response:
        group = emulator.find_group(str(group_id)) if group_id else None
        if group is None:
            raise ApiError(404, "404 Group Not Found")
        user = emulator.find_user_by_id(user_id)
        level = emulator.access_level(group, user) if user else None
        if user is None or level is None:
            raise ApiError(404, "404 Not found")
        return json_response(shapes.member(user, level))

    # Repository

    @app.get("/api/v4/projects/<int:project_id>/repository/commits/<path:ref>")
    def get_commit(project_id: int, ref: str) -> Response:
        if ref.endswith("/statuses"):
            return commit_statuses(project_id, ref.removesuffix("/statuses"))
        project = project_or_404(project_id)
        sha = project.git.resolve(ref)
        if sha is None:
            raise ApiError(404, "404 Commit Not Found")
        return json_response(shapes.commit(project, sha))

    @app.get("/api/v4/projects/<int:project_id>/repository/branches/<path:branch>")
    def get_branch(project_id: int, branch: str) -> Response:
        project = project_or_404(project_id)
        sha = project.git.resolve(f"refs/heads/{branch}")
        if sha is None:
            raise ApiError(404, "404 Branch Not Found")
        return json_response(shapes.branch(project, branch, sha))

    @app.delete("/api/v4/projects/<int:project_id>/repository/branches/<path:branch>")
    def delete_branch(project_id: int, branch: str) -> Response:
        project = project_or_404(project_id)
        level = emulator.access_level(project, g.user)
        if level is None or level < 30:
            raise ApiError(403, "403 Forbidden")
        if branch == project.default_branch:
            raise ApiError(405, "405 Method Not Allowed")
        if project.git.resolve(f"refs/heads/{branch}") is None:
            raise ApiError(404, "404 Branch Not Found")
        project.git.git("update-ref", "-d", f"refs/heads/{branch}")
        return Response(status=204)

    # Merge requests

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>")
    def get_merge_request(project_id: int, iid: int) -> Response:
        return json_response(shapes.merge_request(mr_or_404(project_id, iid)))

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/diffs")
    def merge_request_diffs(project_id: int, iid: int) -> Response:
        mr = mr_or_404(project_id, iid)
        return listed(emulator.diffs(mr), shapes.diff)

    @app.put("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/merge")
    def merge_merge_request(project_id: int, iid: int) -> Response:
        mr = mr_or_404(project_id, iid)
        level = emulator.access_level(mr.project, g.user)
        if level is None or level < 30:
            raise ApiError(401, "401 Unauthorized")
        emulator.merge(mr, g.user, body())
        return json_response(shapes.merge_request(mr))

    @app.put("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/reset_approvals")
    def reset_approvals(project_id: int, iid: int) -> Response:
        # GitLab lets only bot users (project and group access tokens) with Maintainer or more do it.
        mr = mr_or_404(project_id, iid)
        level = emulator.access_level(mr.project, g.user)
        if not g.user.bot or level is None or level < 40:
            raise ApiError(401, "401 Unauthorized")
        with emulator.lock:
            mr.approvals.clear()
        return Response(status=202)

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/approvals")
    def merge_request_approvals(project_id: int, iid: int) -> Response:
        return json_response(shapes.approvals(mr_or_404(project_id, iid)))

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/approval_state")
    def merge_request_approval_state(project_id: int, iid: int) -> Response:
        return json_response(shapes.approval_state(mr_or_404(project_id, iid)))

    # Notes

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/notes")
    def list_notes(project_id: int, iid: int) -> Response:
        mr = mr_or_404(project_id, iid)
        # GitLab lists newest first unless asked otherwise.
        ordered = sorted(mr.notes.values(), key=lambda n: n.id, reverse=request.args.get("sort", "desc") == "desc")
        return listed(ordered, lambda note: shapes.note(mr, note))

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/notes/<int:note_id>")
    def get_note(project_id: int, iid: int, note_id: int) -> Response:
        mr = mr_or_404(project_id, iid)
        return json_response(shapes.note(mr, note_or_404(mr, note_id)))

    def note_body(data: dict[str, Any]) -> str:
        text = data.get("body")
        if not isinstance(text, str) or not text:
            raise ApiError(400, "400 Bad request - body is missing")
        if len(text) > NOTE_MAX_CHARS:
            raise ApiError(400, {"note": [f"is too long (maximum is {NOTE_MAX_CHARS} characters)"]})
        return text

    @app.post("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/notes")
    def create_note(project_id: int, iid: int) -> Response:
        mr = mr_or_404(project_id, iid)
        require_write(mr.project)
        note = emulator.create_note(mr, note_body(body()), g.user)
        return json_response(shapes.note(mr, note), 201)

    @app.put("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/notes/<int:note_id>")
    def update_note(project_id: int, iid: int, note_id: int) -> Response:
        mr = mr_or_404(project_id, iid)
        note = note_or_404(mr, note_id)
        if note.author.id != g.user.id:
            raise ApiError(403, "403 Forbidden")
        note.body = note_body(body())
        note.updated_at = now()
        return json_response(shapes.note(mr, note))

    # Award emoji

    def award_from(awards: list[AwardEmoji], awardable_id: int, awardable_type: str) -> Response:
        name = body().get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "400 Bad request - name is missing")
        return json_response(
            shapes.award_emoji(emulator.award(awards, name, g.user, awardable_id, awardable_type)), 201
        )

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/award_emoji")
    def list_mr_awards(project_id: int, iid: int) -> Response:
        return listed(mr_or_404(project_id, iid).awards, shapes.award_emoji)

    @app.post("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/award_emoji")
    def award_mr(project_id: int, iid: int) -> Response:
        mr = mr_or_404(project_id, iid)
        return award_from(mr.awards, mr.id, "MergeRequest")

    @app.get("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/notes/<int:note_id>/award_emoji")
    def list_note_awards(project_id: int, iid: int, note_id: int) -> Response:
        mr = mr_or_404(project_id, iid)
        return listed(note_or_404(mr, note_id).awards, shapes.award_emoji)

    @app.post("/api/v4/projects/<int:project_id>/merge_requests/<int:iid>/notes/<int:note_id>/award_emoji")
    def award_note(project_id: int, iid: int, note_id: int) -> Response:
        mr = mr_or_404(project_id, iid)
        note = note_or_404(mr, note_id)
        return award_from(note.awards, note.id, "Note")

    # Commit statuses

    @app.post("/api/v4/projects/<int:project_id>/statuses/<sha>")
    def create_status(project_id: int, sha: str) -> Response:
        project = project_or_404(project_id)
        level = emulator.access_level(project, g.user)
        if level is None or level < 30:
            raise ApiError(403, "403 Forbidden")
        return json_response(shapes.commit_status(emulator.create_status(project, sha, body(), g.user)), 201)

    def commit_statuses(project_id: int, sha: str) -> Response:
        project = project_or_404(project_id)
        wanted = [
            s
            for s in project.statuses
            if s.sha == sha
            and request.args.get("ref") in (None, s.ref)
            and request.args.get("name") in (None, s.name)
            and request.args.get("pipeline_id") in (None, str(s.pipeline_id))
        ]
        if request.args.get("all") not in ("true", "1"):
            latest: dict[tuple[int, str], Any] = {}
            for status in wanted:
                latest[(status.pipeline_id, status.name)] = status
            wanted = sorted(latest.values(), key=lambda s: s.id)
        return listed(wanted, shapes.commit_status)

    # Issues

    @app.get("/api/v4/projects/<int:project_id>/issues")
    def list_issues(project_id: int) -> Response:
        project = project_or_404(project_id)
        state = request.args.get("state", "all")
        labels = [label for label in request.args.get("labels", "").split(",") if label]
        search = request.args.get("search")
        found = [
            issue
            for issue in sorted(project.issues.values(), key=lambda i: i.iid, reverse=True)
            if state in ("all", issue.state)
            and all(label in issue.labels for label in labels)
            and (not search or search.lower() in (issue.title + issue.description).lower())
        ]
        return listed(found, shapes.issue)

    @app.get("/api/v4/projects/<int:project_id>/issues/<int:iid>")
    def get_issue(project_id: int, iid: int) -> Response:
        return json_response(shapes.issue(issue_or_404(project_or_404(project_id), iid)))

    @app.post("/api/v4/projects/<int:project_id>/issues")
    def create_issue(project_id: int) -> Response:
        project = project_or_404(project_id)
        require_write(project)
        data = body()
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "400 Bad request - title is missing")
        labels = data.get("labels") or ""
        names = labels if isinstance(labels, list) else [x.strip() for x in str(labels).split(",") if x.strip()]
        issue = emulator.create_issue(project, title, str(data.get("description") or ""), names, g.user)
        return json_response(shapes.issue(issue), 201)

    @app.get("/api/v4/projects/<int:project_id>/issues/<int:iid>/notes")
    def list_issue_notes(project_id: int, iid: int) -> Response:
        issue = issue_or_404(project_or_404(project_id), iid)
        ordered = sorted(issue.notes.values(), key=lambda n: n.id, reverse=request.args.get("sort", "desc") == "desc")
        return listed(ordered, lambda note: shapes.note(issue, note))

    @app.post("/api/v4/projects/<int:project_id>/issues/<int:iid>/notes")
    def create_issue_note(project_id: int, iid: int) -> Response:
        project = project_or_404(project_id)
        require_write(project)
        issue = issue_or_404(project, iid)
        note = emulator.create_note(issue, note_body(body()), g.user)
        return json_response(shapes.note(issue, note), 201)

    @app.put("/api/v4/projects/<int:project_id>/issues/<int:iid>")
    def update_issue(project_id: int, iid: int) -> Response:
        project = project_or_404(project_id)
        require_write(project)
        issue = issue_or_404(project, iid)
        data = body()
        if "title" in data:
            issue.title = str(data["title"])
        if "description" in data:
            issue.description = str(data["description"] or "")
        if "labels" in data:
            issue.labels = [x.strip() for x in str(data["labels"]).split(",") if x.strip()]
        event = data.get("state_event")
        if event == "close" and issue.state == "opened":
            issue.state, issue.closed_by, issue.closed_at = "closed", g.user, now()
        elif event == "reopen" and issue.state == "closed":
            issue.state, issue.closed_by, issue.closed_at = "opened", None, None
        elif event not in (None, "close", "reopen"):
            raise ApiError(400, "state_event does not have a valid value")
        issue.updated_at = now()
        return json_response(shapes.issue(issue))

    return app
