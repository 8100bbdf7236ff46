"""Secrets learnt after start-up (GitHub App installation tokens) are redacted from then on."""

from __future__ import annotations

import io
import logging
import secrets as random

from atlas.logs import add_runtime_secret, configure_logging
from atlas.runtime.joblog import Redactor


def test_a_token_learnt_after_start_up_is_redacted_in_the_process_log() -> None:
    stream = io.StringIO()
    handler = configure_logging("info", stream=stream, secrets=["start-up-secret-value"])
    try:
        token = "ghs_" + random.token_hex(18)
        logging.getLogger("atlas.test").info("before %s", token)
        add_runtime_secret(token)
        logging.getLogger("atlas.test").info("after %s and start-up-secret-value", token)
    finally:
        logging.getLogger().removeHandler(handler)
    before, after = stream.getvalue().splitlines()
    assert token in before
    assert token not in after and "start-up-secret-value" not in after
    assert after.count("***") == 2


def test_a_job_log_redactor_made_before_the_token_was_minted_hides_it() -> None:
    redactor = Redactor(["given-secret-value"])
    token = "ghs_" + random.token_hex(18)
    add_runtime_secret(token)
    assert redactor(f"git said {token} and given-secret-value") == "git said *** and ***"
