"""Isolated git working copies, one per (repository, pull request, workspace), at exactly the commit to plan.

Each repository has one bare mirror at `<data-dir>/repos/.mirrors/<owner>/<name>.git`, the only
place its objects are fetched into and kept; every copy, at
`<data-dir>/repos/<owner>/<name>/<pull>/<workspace>`, is a `git worktree` of that mirror, so it
costs the files of its commit, not the repository's history, and a commit already fetched for one
pull request (or one event) is not fetched again for the next. The mirror keeps a ref to each pull
request's commit (`refs/atlas/pulls/N`), which is what its fetches tell the server they have: a new
commit then costs the objects it adds, not its whole tree again. Fetches into a mirror, and changes to
its list of work trees, are serialised across threads and processes by the mirror's file lock.
Copies are reused: a new push to the pull request fetches into the mirror and checks out in the
existing copy, so terraform's `.terraform` directory (providers, modules, backend settings) survives.

The GitHub token reaches git only as an `Authorization` header in the environment of the one
`git fetch` that needs it: never in argv (visible to every local user in `ps`), the remote URL,
`.git/config`, the job log or an error message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from atlas.gitlab.hosts import GIT_USER as GITLAB_GIT_USER
from atlas.gitlab.hosts import project_clone_url
from atlas.models import Repo, VCSHost
from atlas.runtime.filelock import file_lock
from atlas.runtime.joblog import JobLog, Redactor
from atlas.runtime.terraform import scrubbed_environ

DEFAULT_GIT_TIMEOUT_SECONDS = 600.0
"""How long one git command may take before the checkout fails."""

_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_GITLAB_PATH = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){1,20}")
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_AUTH_FAILURE = re.compile(
    r"could not read Username|Authentication failed|terminal prompts disabled|"
    r"returned error: 40[13]|HTTP 40[13]",
    re.IGNORECASE,
)
# Variables that would point git at another repository or change its configuration behind our back;
# the GIT_CONFIG_* ones are rebuilt for every command.
_GIT_VARIABLE_DROP = re.compile(
    r"^(GIT_DIR|GIT_WORK_TREE|GIT_INDEX_FILE|GIT_OBJECT_DIRECTORY|GIT_ALTERNATE_OBJECT_DIRECTORIES"
    r"|GIT_CONFIG_PARAMETERS|GIT_CONFIG_COUNT|GIT_CONFIG_KEY_\d+|GIT_CONFIG_VALUE_\d+"
    r"|GIT_ASKPASS|SSH_ASKPASS|GIT_TRACE.*|GIT_CURL_VERBOSE)$"
)


class WorkingCopyError(Exception):
    """A working copy could not be brought to the requested commit; the message holds no secret."""


GITHUB_GIT_USER = "x-access-token"
"""The basic-auth user GitHub takes with an installation or personal access token."""
GITLAB_DIR = ".gitlab"
"""GitLab projects' copies and mirrors live under `<root>/.gitlab`: a dot directory, so no GitHub
owner's copies (whose names never start with a dot) can share a path with them."""


class WorkingCopies:
    """The working copies under one root directory, safe to use from many threads and processes.

    A GitLab repository (`Repo.vcs`) is cloned from `gitlab_url` as user `oauth2`, under its own
    directory; names given as plain text (`OWNER/NAME`) are GitHub's.
    """

    def __init__(
        self,
        root: Path,
        git: str = "git",
        *,
        git_url: str = "https://github.com",
        secrets: Sequence[str] = (),
        timeout: float = DEFAULT_GIT_TIMEOUT_SECONDS,
        fetch_depth: int = 1,
        merge_depth: int = 0,
        gitlab_url: str | None = None,
    ) -> None:
        self.root = root
        self.gitlab_url = gitlab_url.rstrip("/") if gitlab_url else None
        self.git = git
        self.git_url = git_url.rstrip("/")
        self.secrets = tuple(s for s in secrets if s)
        self.timeout = timeout
        self.fetch_depth = fetch_depth
        # `--checkout-depth`: the history fetched to merge the base branch in; 0 is all of it.
        self.merge_depth = merge_depth

    def clone_url(self, repo: Repo | str) -> str:
        """The repository's URL on the configured git host: the only place the token is sent.

        Never the URL a webhook payload or an API answer names, which a sender could point anywhere.
        """
        full_name, host = _named(repo)
        if host is VCSHost.GITLAB:
            if self.gitlab_url is None:
                raise WorkingCopyError(f"{full_name} is a GitLab project, and this server serves no GitLab")
            if not _GITLAB_PATH.fullmatch(full_name):
                raise WorkingCopyError(f"{full_name!r} is not a GitLab project path (group[/subgroup…]/project)")
            try:
                url = project_clone_url(self.gitlab_url, full_name)
            except ValueError as error:
                raise WorkingCopyError(str(error)) from None
            _check_url(url)
            return url
        if not _FULL_NAME.fullmatch(full_name) or any(part in (".", "..") for part in full_name.split("/")):
            raise WorkingCopyError(f"{full_name!r} is not a repository name (OWNER/NAME)")
        url = f"{self.git_url}/{full_name}.git"
        _check_url(url)
        return url

    def mirror_for(self, repo: Repo | str) -> Path:
        """Where the bare mirror of one repository lives (a dot directory: no owner's name starts with one)."""
        full_name, host = _named(repo)
        owner, _, name = full_name.partition("/")
        return self._host_root(host) / ".mirrors" / _safe_component(owner) / f"{_safe_component(name)}.git"

    def path_for(self, repo: Repo | str, pull_number: int, workspace: str) -> Path:
        """Where the working copy of one pull request in one workspace lives."""
        return self._pull_dir(repo, pull_number) / _safe_component(workspace)

    def _host_root(self, host: VCSHost) -> Path:
        return self.root / GITLAB_DIR if host is VCSHost.GITLAB else self.root

    def checkout(
        self,
        repo: Repo,
        pull_number: int,
        workspace: str,
        sha: str,
        token: str | None,
        *,
        log: JobLog | None = None,
    ) -> Path:
        """The working copy for (repo, pull, workspace) with HEAD at exactly `sha` and nothing else in it.

        Untracked and ignored files are removed, except `.terraform` directories.
        """
        if not _SHA.fullmatch(sha):
            raise WorkingCopyError(f"{sha!r} is not a full commit sha")
        url = self.clone_url(repo)
        path = self.path_for(repo, pull_number, workspace)
        mirror = self.mirror_for(repo)
        with self._locked(path):
            # No fetch lock of its own: the mirror's lock is held around all of this.
            mirror_git = _Git(self, mirror, token, log, user=_git_user(repo))
            with file_lock(_lock_path(mirror)):
                self._ensure_mirror(mirror_git, url)
                if not mirror_git.has_commit(sha):
                    self._fetch(mirror_git, repo, url, pull_number, sha)
                # A ref per pull request: git offers only refs as what it has when it fetches, so
                # without them every fetch would download the whole tree of its commit again.
                mirror_git.check(["update-ref", _pull_ref(pull_number), sha], echo=False)
                created = self._ensure_worktree(mirror_git, path, sha)
            git = _Git(self, path, token, log, fetch_lock=_lock_path(mirror), user=_git_user(repo))
            if not created:  # a new work tree is at `sha` with nothing else in it already
                git.check(["checkout", "-q", "--force", "--detach", sha])
                git.check(["clean", "-ffdx", "-e", ".terraform"])
            head = git.check(["rev-parse", "HEAD"], echo=False).strip()
            if head != sha:
                raise WorkingCopyError(f"the working copy is at {head[:12]}, not at {sha[:12]}")
        return path

    def _ensure_mirror(self, git: _Git, url: str) -> None:
        """The bare mirror, created on first use; its remote is the configured host's URL, never a token."""
        if not (git.path / "HEAD").is_file():
            shutil.rmtree(git.path, ignore_errors=True)
            git.path.mkdir(parents=True)
            git.check(["-c", "init.defaultBranch=atlas", "init", "-q", "--bare"])
            # Objects that only a work tree's HEAD or index reach must never be collected.
            git.check(["config", "gc.auto", "0"], echo=False)
            git.check(["remote", "add", "origin", url], echo=False)
        else:
            git.check(["remote", "set-url", "origin", url], echo=False)

    def _ensure_worktree(self, mirror: _Git, path: Path, sha: str) -> bool:
        """`path` as a work tree of the mirror (called with the mirror locked); whether it was created at `sha`.

        A full clone left by an older layout, or a work tree whose mirror is gone, is replaced.
        """
        dot_git = path / ".git"
        if dot_git.is_file():
            code, common = mirror.run(["-C", str(path), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                      echo=False)
            if code == 0 and Path(common.strip()) == mirror.path.resolve():
                return False
        shutil.rmtree(path, ignore_errors=True)
        mirror.check(["worktree", "prune"], echo=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        mirror.check(["worktree", "add", "-q", "--force", "--detach", str(path), sha])
        return True

    def merge_base_branch(
        self, repo: Repo, pull_number: int, workspace: str, base_ref: str, token: str | None,
        *, log: JobLog | None = None,
    ) -> str:
        """Merge the base branch's tip into the checked-out head (`--checkout-strategy merge`).

        Returns the base sha merged, so the comment can say what the plan is of. A conflict leaves
        the copy at the head and raises, naming the conflicting files.
        """
        path = self.path_for(repo, pull_number, workspace)
        git = _Git(self, path, token, log, fetch_lock=_lock_path(self.mirror_for(repo)), user=_git_user(repo))
        with self._locked(path):
            depth = self.merge_depth
            if depth:
                # The head's history first: fetched after the base's, its boundary would cut the base's.
                head_sha = git.check(["rev-parse", "HEAD"], echo=False).strip()
                git.run(["fetch", "--no-tags", f"--depth={depth}", "origin", head_sha], auth=True)
            base_sha = self._fetch_branch(git, repo, base_ref, depth=depth)
            code, output = self._merge(git, base_ref, base_sha)
            if code != 0 and depth and "unrelated histories" in output:
                if log is not None:
                    log.write(f"atlas: the merge base of the head and {base_ref} is more than {depth} commits "
                              "deep (--checkout-depth): fetching their whole history")
                base_sha = self._fetch_branch(git, repo, base_ref)
                code, output = self._merge(git, base_ref, base_sha)
            if code != 0:
                conflicts = git.run(["diff", "--name-only", "--diff-filter=U"], echo=False)[1].split()
                git.run(["merge", "--abort"], echo=False)
                detail = f"conflicts in {', '.join(conflicts)}" if conflicts else _last_line(output)
                raise WorkingCopyError(
                    f"the pull request does not merge cleanly into {base_ref} ({detail}); "
                    f"merge or rebase {base_ref} into the branch and push"
                )
        return base_sha

    @staticmethod
    def _merge(git: _Git, base_ref: str, base_sha: str) -> tuple[int, str]:
        return git.run([
            "-c", "user.name=atlas", "-c", "user.email=atlas@localhost",
            "merge", "--no-ff", "--no-edit", "-q", "-m", f"atlas: merge {base_ref} for planning", base_sha,
        ])

    def is_behind_base(
        self, repo: Repo, pull_number: int, workspace: str, base_ref: str, token: str | None,
        *, log: JobLog | None = None,
    ) -> bool:
        """Whether the base branch has commits the checked-out pull request lacks (it diverged)."""
        path = self.path_for(repo, pull_number, workspace)
        git = _Git(self, path, token, log, fetch_lock=_lock_path(self.mirror_for(repo)), user=_git_user(repo))
        with self._locked(path):
            base_sha = self._fetch_branch(git, repo, base_ref)
            code, _ = git.run(["merge-base", "--is-ancestor", base_sha, "HEAD"], echo=False)
        return code != 0

    def _fetch_branch(self, git: _Git, repo: Repo, branch: str, *, depth: int = 0) -> str:
        """Fetch a branch with its last `depth` commits (0: with the whole history); its tip sha."""
        shallow = git.is_shallow()
        history = [f"--depth={depth}"] if depth else ["--unshallow"] if shallow else []
        ref = f"refs/remotes/origin/{branch}"
        code, output = git.run(
            ["fetch", "--no-tags", *history, "origin", f"+refs/heads/{branch}:{ref}"], auth=True
        )
        if code != 0:
            raise WorkingCopyError(f"cannot fetch branch {branch} of {repo.full_name}: {_last_line(output)}")
        return git.check(["rev-parse", ref], echo=False).strip()

    def remove_pull(self, repo: Repo | str, pull_number: int) -> None:
        """Delete every working copy of one pull request (when it is closed or merged)."""
        pull_dir = self._pull_dir(repo, pull_number)
        if not pull_dir.is_dir():
            return
        names = {entry.name for entry in pull_dir.iterdir() if not entry.name.startswith(".")}
        names |= {entry.name[1:-5] for entry in pull_dir.glob(".*.lock")}
        for name in sorted(names):
            path = pull_dir / name
            with self._locked(path):
                shutil.rmtree(path, ignore_errors=True)
                # Unlinked while held: a process waiting on it notices and locks the new file instead.
                _lock_path(path).unlink(missing_ok=True)
        mirror = self.mirror_for(repo)
        if (mirror / "HEAD").is_file():
            # The mirror forgets the removed work trees; their objects stay for the next pull request.
            with file_lock(_lock_path(mirror)):
                mirror_git = _Git(self, mirror, None, None)
                mirror_git.run(["worktree", "prune"], echo=False)
                mirror_git.run(["update-ref", "-d", _pull_ref(pull_number)], echo=False)
        # Fails when a new checkout for this pull request arrived meanwhile, which is fine.
        with contextlib.suppress(OSError):
            pull_dir.rmdir()

    def _pull_dir(self, repo: Repo | str, pull_number: int) -> Path:
        full_name, host = _named(repo)
        owner, _, name = full_name.partition("/")
        if not owner or not name:
            raise ValueError(f"not an owner/name repository name: {full_name!r}")
        if pull_number < 0:
            raise ValueError(f"not a pull request number: {pull_number}")
        # A GitLab path's `subgroup/project` rest is one component (hashed), so no two paths share one.
        return self._host_root(host) / _safe_component(owner) / _safe_component(name) / str(int(pull_number))

    def _fetch(self, git: _Git, repo: Repo, url: str, pull_number: int, sha: str) -> None:
        """Fetch `sha`: by itself where the server allows it (GitHub, protocol v2), else by its refs."""
        code, output = git.run(
            ["fetch", "--no-tags", f"--depth={self.fetch_depth}", "origin", sha], auth=True
        )
        if code == 0:
            return
        if _AUTH_FAILURE.search(output):
            raise WorkingCopyError(
                f"git could not authenticate to {urlsplit(url).netloc}: the token was refused "
                f"or cannot read {repo.full_name} ({_last_line(output)})"
            )
        # Servers speaking protocol v0 only hand out commits that a ref points at.
        unshallow = ["--unshallow"] if git.is_shallow() else []
        code, output = git.run(
            ["fetch", "--no-tags", *unshallow, "origin", "+refs/heads/*:refs/remotes/origin/*"], auth=True
        )
        if code != 0:
            raise WorkingCopyError(f"git fetch from {repo.full_name} failed: {_last_line(output)}")
        # Not every server has pull request refs; when it has none, the branches may be enough.
        # A fork's commits are in the base repository under these refs (GitLab's, GitHub's).
        gitlab = repo.vcs is VCSHost.GITLAB
        source = f"refs/merge-requests/{pull_number}/head" if gitlab else f"refs/pull/{pull_number}/head"
        pull_ref = f"+{source}:refs/remotes/origin/pull/{pull_number}"
        git.run(["fetch", "--no-tags", "origin", pull_ref], auth=True)
        if not git.has_commit(sha):
            raise WorkingCopyError(
                f"commit {sha[:12]} is not in {repo.full_name} (was the branch force-pushed?)"
            )

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """Hold the working copy at `path` against other threads and other processes."""
        with file_lock(_lock_path(path)):
            yield


def _named(repo: Repo | str) -> tuple[str, VCSHost]:
    """A repository's name and host; a name alone is a GitHub repository's."""
    if isinstance(repo, Repo):
        return repo.full_name, repo.vcs
    return repo, VCSHost.GITHUB


def _git_user(repo: Repo) -> str:
    return GITLAB_GIT_USER if repo.vcs is VCSHost.GITLAB else GITHUB_GIT_USER


def _last_line(output: str) -> str:
    """Git's last words, which name what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "git printed nothing"


class _Git:
    """Runs git in one working copy with a scrubbed environment, redacting everything it prints."""

    def __init__(self, copies: WorkingCopies, path: Path, token: str | None, log: JobLog | None,
                 *, fetch_lock: Path | None = None, user: str = GITHUB_GIT_USER) -> None:
        self.copies = copies
        self.path = path
        # Held around every fetch: all copies of a repository fetch into its one mirror.
        self.fetch_lock = fetch_lock
        self.log = log
        self.auth_header: str | None = None
        secrets = list(copies.secrets)
        if token:
            credentials = base64.b64encode(f"{user}:{token}".encode()).decode()
            self.auth_header = f"Authorization: Basic {credentials}"
            secrets += [token, credentials]
        self.redact = Redactor(secrets)

    def env(self, *, auth: bool) -> dict[str, str]:
        env = {
            name: value
            for name, value in scrubbed_environ(self.redact.secrets).items()
            if not _GIT_VARIABLE_DROP.match(name)
        }
        config: dict[str, str] = {
            # A hook from the server's git config must not run on a pull request's checkout.
            "core.hooksPath": os.devnull,
            # Git would ask a credential helper on a 401 and might store whatever it was given.
            "credential.helper": "",
            # A checkout writes its files with a worker per core: a large repository's 20,000 files
            # take a fraction of the time of one process inflating and writing them in turn.
            "checkout.workers": "0",
        }
        if auth and self.auth_header:
            config["http.extraHeader"] = self.auth_header
        env.update(_config_environment(config))
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        return env

    def run(self, args: Sequence[str], *, auth: bool = False, echo: bool = True) -> tuple[int, str]:
        """Run `git <args>`: its exit code and its (redacted) output."""
        if auth and self.fetch_lock is not None:
            with file_lock(self.fetch_lock):
                return self._run(args, auth=auth, echo=echo)
        return self._run(args, auth=auth, echo=echo)

    def _run(self, args: Sequence[str], *, auth: bool, echo: bool) -> tuple[int, str]:
        if self.log is not None and echo:
            self.log.write(self.redact(f"$ git {' '.join(args)}"))
        try:
            completed = subprocess.run(
                [self.copies.git, *args],
                cwd=self.path,
                env=self.env(auth=auth),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=self.copies.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WorkingCopyError(f"git {args[0]} timed out after {self.copies.timeout:g} seconds") from None
        except OSError as error:
            raise WorkingCopyError(f"cannot run {self.copies.git}: {error.strerror}") from None
        output = self.redact(completed.stdout.decode("utf-8", errors="replace"))
        if self.log is not None and echo and output.strip():
            self.log.write(output)
        return completed.returncode, output

    def check(self, args: Sequence[str], *, echo: bool = True) -> str:
        """Run `git <args>`; its output, or a `WorkingCopyError` saying what failed."""
        code, output = self.run(args, echo=echo)
        if code != 0:
            raise WorkingCopyError(f"git {args[0]} failed: {_last_line(output)}")
        return output

    def is_shallow(self) -> bool:
        return self.run(["rev-parse", "--is-shallow-repository"], echo=False)[1].strip() == "true"

    def has_commit(self, sha: str) -> bool:
        code, _ = self.run(["cat-file", "-e", f"{sha}^{{commit}}"], echo=False)
        return code == 0


def _config_environment(config: Mapping[str, str]) -> dict[str, str]:
    """Git configuration passed through `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` rather than argv."""
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for index, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _check_url(url: str) -> None:
    """Only plain http(s) URLs without credentials: whatever is in the URL ends up in `.git/config`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WorkingCopyError("the clone URL must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise WorkingCopyError("the clone URL must not contain credentials")


def _safe_component(value: str) -> str:
    """`value` as one path component that cannot climb out of its directory or start with a dot.

    Names that need changing get a hash of the original appended, so two names never share a copy.
    """
    if _SAFE_COMPONENT.fullmatch(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", value).lstrip(".")[:60] or "_"
    return f"{cleaned}-{hashlib.sha256(value.encode()).hexdigest()[:12]}"


def _pull_ref(pull_number: int) -> str:
    """The mirror's ref to the commit last checked out for a pull request (what its fetches say they have)."""
    return f"refs/atlas/pulls/{int(pull_number)}"


def _lock_path(path: Path) -> Path:
    # Safe components never start with a dot, so this cannot be another workspace's copy.
    return path.with_name(f".{path.name}.lock")
