"""Policy checks in Redis mode: what one rq worker recorded (results, approvals) is what another one judges by."""

from __future__ import annotations

from pathlib import Path

from tests.scale_world import DEVELOPER, ScaleWorld, eventually

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"
OWNER = "olga"

AT_MOST_TWO_REPLICAS = """\
package main
import rego.v1

deny contains msg if {
    some rc in input.resource_changes
    rc.change.after.input.replicas > 2
    msg := sprintf("%s: at most 2 replicas, got %d", [rc.address, rc.change.after.input.replicas])
}
"""


def policy_args(root: Path) -> tuple[str, ...]:
    directory = root / "policies" / "replicas"
    directory.mkdir(parents=True)
    (directory / "replicas.rego").write_text(AT_MOST_TWO_REPLICAS)
    config = root / "repos.yaml"
    config.write_text("repos:\n- id: /.*/\npolicies:\n  owners: {users: [olga]}\n  policy_sets:\n"
                      "    - {name: replicas, path: policies/replicas, source: local}\n")
    return ("--repo-config", str(config), "--enable-policy-checks")


def test_a_worker_applies_by_the_policy_results_and_approvals_other_workers_recorded(scale_world: ScaleWorld) -> None:
    world = scale_world
    world.create_repo(REPO)
    world.emulator.set_permission(REPO, OWNER, "write")
    args = policy_args(world.root)
    server = world.start_server(extra_args=args)
    pull = world.open_pull(REPO, "three-replicas", ("app",))

    def said(needle: str, count: int = 1) -> str:
        def found() -> str | None:
            matching = [body for body in world.bot_comments(pull) if needle in body]
            return matching[count - 1] if len(matching) >= count else None

        return eventually(found, 180, f"atlas's comment #{count} with {needle!r} "
                                      f"(it said {world.bot_comments(pull)!r})")

    checking = world.start_worker(extra_args=args)
    assert server.pull_event(pull).status_code == 202
    checked = said("Policy Check")
    assert "at most 2 replicas, got 3" in checked
    checking.terminate()

    approving = world.start_worker(extra_args=args)
    assert server.comment(pull, "atlas apply", DEVELOPER).status_code == 202
    refused = said("did not apply")
    assert "`replicas` (failed, 0/1 approvals; can approve: @olga)" in refused, \
        "the failure another worker recorded blocks the apply"
    assert server.comment(pull, "atlas approve_policies", OWNER).status_code == 202
    assert "allow apply now" in said("Recorded the policy approvals of @olga")
    approving.terminate()

    applying = world.start_worker(extra_args=args)
    assert server.comment(pull, "atlas apply", DEVELOPER).status_code == 202
    said("Apply complete")
    assert applying.ran("Apply complete"), "the worker that applied is not the one the approval was recorded on"
    assert not checking.ran("Apply complete") and not approving.ran("Apply complete")
    assert world.latest_state(pull, "atlas/policy_check") == "success"
