"""A module library served by the emulator's git server, for fixtures whose modules come over git.

`publish_module_library` commits `terraform-fixtures/module-library` as the public repository
`acme/terraform-modules`, tagged `v1`, then a second release tagged `v2`; `remote_modules_repo`
commits a fixture whose `git::` sources point at it. Public, because terraform fetches modules with
its own git inside the sandbox, without atlas's token (GitHub serves public repositories to anyone).
"""

from __future__ import annotations

from pathlib import Path
from random import Random

from tests.emulator import EmulatedRepo, GitHubEmulator

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "terraform-fixtures"
LIBRARY = "acme/terraform-modules"
"""The library's repository on the emulated GitHub."""

V2_LABEL = """variable "name" {
  type = string
}

variable "environment" {
  type = string
}

output "id" {
  value = "${var.environment}-${var.name}-v2"
}
"""
"""`modules/label` as released in `v2`: the ids it makes end in `-v2`, so a plan shows which release it used."""


def publish_module_library(emulator: GitHubEmulator, *, private: bool = False, history: int = 0,
                           history_bytes: int = 20_000) -> EmulatedRepo:
    """`acme/terraform-modules` with tags `v1` (the fixture) and `v2` (`V2_LABEL`), `main` at `v2`.

    `history` commits before `v1`, each rewriting an example of `history_bytes` (for benchmarks: a real
    library has years of history, which terraform's git clones whole).
    """
    library = emulator.create_repo(LIBRARY, source_dir=FIXTURES / "module-library", private=private)
    if history:
        _grow_history(library, history, history_bytes)
    v1 = library.git.resolve("refs/heads/main")
    assert v1 is not None
    library.git.update_ref("refs/tags/v1", v1)
    v2 = emulator.push_to_branch(LIBRARY, "main", {"modules/label/main.tf": V2_LABEL}, message="label: v2 ids")
    library.git.update_ref("refs/tags/v2", v2)
    return library


def _grow_history(library: EmulatedRepo, commits: int, size: int) -> None:
    """`commits` more commits on `main`, in one `git fast-import`; the modules stay as they are."""
    random = Random(commits)
    stream = bytearray()
    parent = library.git.resolve("refs/heads/main")
    for number in range(commits):
        message = f"examples: revision {number}".encode()
        committer = f"Acme <acme@example.test> {1_600_000_000 + number} +0000"
        stream += f"commit refs/heads/main\ncommitter {committer}\n".encode()
        stream += f"data {len(message)}\n".encode() + message + b"\n"
        if number == 0:
            stream += f"from {parent}\n".encode()
        data = random.randbytes(size // 2).hex().encode()
        stream += f"M 100644 inline examples/example-{number % 50:02d}.txt\ndata {len(data)}\n".encode() + data + b"\n"
    stream += b"done\n"
    library.git.git("fast-import", "--quiet", "--done", input=bytes(stream))


def remote_modules_repo(emulator: GitHubEmulator, state_dir: Path, full_name: str = "acme/infra") -> EmulatedRepo:
    """The `remote-modules` fixture as `full_name`, its sources pointing at the emulator's git server."""
    return emulator.create_repo(full_name, source_dir=FIXTURES / "remote-modules",
                                substitutions={"__STATE_DIR__": str(state_dir), "__MODULES_URL__": emulator.base_url})


def library_fetches(emulator: GitHubEmulator) -> int:
    """How many git requests for the library the emulator has answered (terraform's `init` makes them)."""
    return sum(1 for record in emulator.requests if record.path.startswith(f"/{LIBRARY}.git/"))
