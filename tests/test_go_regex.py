"""Atlantis's RE2 patterns mean in atlas what they meant in Atlantis."""

from __future__ import annotations

import pytest

from atlas.config.regex import PatternError, go_pattern
from atlas.runtime.stage_run import redact_matches


@pytest.mark.parametrize("pattern,text,matched", [
    (r"((?i)secret:\s\")[^\"]*", 'mySecret: "foo"', 'Secret: "foo'),
    (r"a(?i)b|c", "aB", "aB"),
    (r"a(?i)b|c", "C", "C"),
    (r"x(?i:y)z", "xYz", "xYz"),
    (r"^[[:alpha:]_]+\z", "abc_", "abc_"),
    (r"(?i)token", "TOKEN", "TOKEN"),
])
def test_re2_flag_groups_and_classes_match_as_in_go(pattern: str, text: str, matched: str) -> None:
    found = go_pattern(pattern).search(text)
    assert found is not None and found.group() == matched


def test_a_flag_group_does_not_reach_past_its_enclosing_group() -> None:
    assert go_pattern(r"(a(?i)b)c").search("aBc") is not None
    assert go_pattern(r"(a(?i)b)c").search("aBC") is None


@pytest.mark.parametrize("pattern", ["(unclosed", "(?U)lazy", "[[:nonsense:]]"])
def test_patterns_atlas_cannot_use_are_refused_with_the_pattern(pattern: str) -> None:
    with pytest.raises(PatternError, match=r"regular expression|flag|translate"):
        go_pattern(pattern)


def test_redaction_keeps_the_first_group_as_atlantis_documents() -> None:
    text = 'mySecret: "foo" and token=abc'
    assert redact_matches(text, [r"((?i)secret:\s\")[^\"]*", r"token=\S+"]) == 'mySecret: "<redacted>" and <redacted>'
