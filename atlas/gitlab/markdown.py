"""GitLab's Markdown where it differs from GitHub's, for the texts atlas renders once for both hosts.

- Alerts: GitHub renders `> [!WARNING]` as a callout; GitLab releases before 17.10 print the marker as
  text. A quote that opens with the alert's emoji and name in bold reads alike on every GitLab.
- Collapsible blocks render alike: `<details><summary>…</summary>`, a blank line, the Markdown
  inside, a blank line, `</details>` (the renderer already leaves those blank lines, which GitLab
  needs before Markdown inside HTML), so they are kept as they are.
- Fenced code is never touched: a plan may print anything.
"""

from __future__ import annotations

import re

_ALERT = re.compile(r"^(\s*>\s*)\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\s*$", re.IGNORECASE)
_ALERT_LABEL = {
    "NOTE": ":information_source: **Note**",
    "TIP": ":bulb: **Tip**",
    "IMPORTANT": ":exclamation: **Important**",
    "WARNING": ":warning: **Warning**",
    "CAUTION": ":octagonal_sign: **Caution**",
}
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def gitlab_markdown(body: str) -> str:
    """`body`, written in GitHub's Markdown, as GitLab renders the same thing."""
    lines = body.split("\n")
    fence = ""
    for index, line in enumerate(lines):
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) \
                    and not line.strip()[len(opened.group(1)):]:
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        alert = _ALERT.match(line)
        if alert:
            lines[index] = alert.group(1) + _ALERT_LABEL[alert.group(2).upper()]
    return "\n".join(lines)
