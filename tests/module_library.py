"""A module library served by the emulator's git server, for fixtures whose modules come over git.

`publish_module_library` commits `terraform-fixtures/module-library` as the public repository
`acme/terraform-modules`, tagged `v1`, then a second release tagged `v2`; `remote_modules_repo`
commits a fixture whose `git::` sources point at it. Public, because terraform fetches modules with
its own git inside the sandbox, without atlas's token (GitHub serves public repositories to anyone).
"""

from __future__ import annotations

from pathlib import Path

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


def publish_module_library(emulator: GitHubEmulator, *, private: bool = False) -> EmulatedRepo:
    """`acme/terraform-modules` with tags `v1` (the fixture) and `v2` (`V2_LABEL`), `main` at `v2`."""
    library = emulator.create_repo(LIBRARY, source_dir=FIXTURES / "module-library", private=private)
    v1 = library.git.resolve("refs/heads/main")
    assert v1 is not None
    library.git.update_ref("refs/tags/v1", v1)
    v2 = emulator.push_to_branch(LIBRARY, "main", {"modules/label/main.tf": V2_LABEL}, message="label: v2 ids")
    library.git.update_ref("refs/tags/v2", v2)
    return library


def remote_modules_repo(emulator: GitHubEmulator, state_dir: Path, full_name: str = "acme/infra") -> EmulatedRepo:
    """The `remote-modules` fixture as `full_name`, its sources pointing at the emulator's git server."""
    return emulator.create_repo(full_name, source_dir=FIXTURES / "remote-modules",
                                substitutions={"__STATE_DIR__": str(state_dir), "__MODULES_URL__": emulator.base_url})


def library_fetches(emulator: GitHubEmulator) -> int:
    """How many git requests for the library the emulator has answered (terraform's `init` makes them)."""
    return sum(1 for record in emulator.requests if record.path.startswith(f"/{LIBRARY}.git/"))
