"""Terminal colour codes in job output, turned into HTML spans (or removed) for the job page.

atlas runs its own terraform steps with `-no-color`, but custom workflow steps and tools may not,
and a raw escape code on a web page reads as noise. Each line is converted on its own: the colour
state does not carry over to the next line, so any line can be rendered as it streams in.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

# Select Graphic Rendition (colours, bold) versus every other escape sequence, which is dropped:
# cursor movement, erasing, OSC titles and hyperlinks, charset selection, and carriage returns.
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OTHER = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b.|\r")

_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")

_STYLES = {1: "bold", 2: "dim", 3: "italic", 4: "underline"}
_STYLE_RESETS = {22: ("bold", "dim"), 23: ("italic",), 24: ("underline",)}


def strip_ansi(text: str) -> str:
    """`text` without any escape sequence."""
    return _OTHER.sub("", _SGR.sub("", text))


def ansi_to_html(line: str) -> Markup:
    """One line of output as escaped HTML, its colours and bold as `<span class="ansi-…">`."""
    parts: list[str] = []
    styles: set[str] = set()
    foreground = background = ""
    position = 0
    for match in _SGR.finditer(line):
        parts.append(_span(line[position:match.start()], styles, foreground, background))
        position = match.end()
        foreground, background = _apply(match.group(1), styles, foreground, background)
    parts.append(_span(line[position:], styles, foreground, background))
    return Markup("".join(parts))


def _apply(params: str, styles: set[str], foreground: str, background: str) -> tuple[str, str]:
    """Apply one SGR sequence's parameters to the current state; returns the new colours."""
    codes = [int(code) if code else 0 for code in params.split(";")]
    index = 0
    while index < len(codes):
        code = codes[index]
        if code == 0:
            styles.clear()
            foreground = background = ""
        elif code in _STYLES:
            styles.add(_STYLES[code])
        elif code in _STYLE_RESETS:
            styles.difference_update(_STYLE_RESETS[code])
        elif 30 <= code <= 37:
            foreground = _COLOURS[code - 30]
        elif 90 <= code <= 97:
            foreground = f"bright-{_COLOURS[code - 90]}"
        elif code == 39:
            foreground = ""
        elif 40 <= code <= 47:
            background = _COLOURS[code - 40]
        elif 100 <= code <= 107:
            background = f"bright-{_COLOURS[code - 100]}"
        elif code == 49:
            background = ""
        elif code in (38, 48):
            # 256-colour and true-colour selections: skip their arguments, keep the default colour.
            index += 2 if codes[index + 1 : index + 2] == [5] else 4
        index += 1
    return foreground, background


def _span(text: str, styles: set[str], foreground: str, background: str) -> str:
    text = _OTHER.sub("", text)
    if not text:
        return ""
    classes = [f"ansi-{style}" for style in sorted(styles)]
    if foreground:
        classes.append(f"ansi-fg-{foreground}")
    if background:
        classes.append(f"ansi-bg-{background}")
    if not classes:
        return str(escape(text))
    return f'<span class="{" ".join(classes)}">{escape(text)}</span>'
