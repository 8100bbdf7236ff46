"""Workers acting as a GitHub App in Redis mode: one installation token, shared by every process."""

from __future__ import annotations

from atlas.stores.redis.backend import connect
from tests.emulator import webhook_payload
from tests.emulator.app import GitHubAppEmulator
from tests.scale_world import ScaleWorld, eventually

pytest_plugins = ["tests.scale_world"]

REPO = "acme/infra"


def test_two_workers_acting_as_a_github_app_share_one_installation_token_through_redis(
    scale_world: ScaleWorld,
) -> None:
    """N workers mint one token per installation, not N: the token is kept (sealed) in Redis."""
    world = scale_world
    app = GitHubAppEmulator(world.emulator)
    installation = app.install("acme")
    world.create_repo(REPO)
    # Different projects, so that neither waits for the other's lock.
    pulls = [world.open_pull(REPO, "app", ("app",)), world.open_pull(REPO, "db", ("db",))]
    env: dict[str, str | None] = {"ATLAS_GH_TOKEN": None, "ATLAS_GH_APP_ID": str(app.app_id),
                                  "ATLAS_GH_APP_KEY": app.private_key_pem, "ATLAS_REDIS_KEY_PREFIX": "acme-atlas:"}
    server = world.start_server(wait=False, env=env)
    workers = [world.start_worker(wait=False, env=env), world.start_worker(wait=False, env=env)]
    for worker in workers:
        worker.wait_for_log("listening on queue")
    server.wait_healthy()

    for pull in pulls:
        payload = webhook_payload("pull_request", pull, "opened")
        payload["installation"] = {"id": installation.id}
        assert server.deliver("pull_request", payload).status_code == 202
    for pull in pulls:
        eventually(lambda pull=pull: [c for c in world.emulator.comments(REPO, pull.number)
                                      if c["user"] == app.bot_login and "Ran Plan" in c["body"]] or None,
                   180, f"the App's plan comment on #{pull.number}")

    assert [token.installation_id for token in app.minted] == [installation.id]
    token = app.minted[0].token
    for process in [server, *workers]:
        assert token not in process.log_text()
    # Kept sealed, below the deployment's --redis-key-prefix.
    assert world.redis_url is not None
    redis = connect(world.redis_url)
    try:
        [key] = redis.keys("*github-app-token:*")
        assert key == f"acme-atlas:github-app-token:{app.app_id}:{installation.id}"
        assert token not in str(redis.get(key))
    finally:
        redis.close()
