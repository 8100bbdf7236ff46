"""Regular expressions written for Atlantis (Go's RE2 syntax), compiled as Python patterns.

RE2 lets a flag group such as `(?i)` appear anywhere and apply to the rest of its enclosing
group; Python accepts flags there only as a scoped group `(?i:...)`. `go_pattern` rewrites the
one into the other, so a pattern copied from an Atlantis config means what it meant there.
"""

from __future__ import annotations

import re

_FLAG_GROUP = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?\)")


class PatternError(ValueError):
    """A pattern atlas cannot compile; the message says why."""


def go_pattern(pattern: str) -> re.Pattern[str]:
    """`pattern` (RE2 syntax) compiled; raises PatternError naming the problem."""
    try:
        return re.compile(_translate(pattern))
    except re.error as error:
        raise PatternError(f"{pattern!r} is not a regular expression atlas can use: {error}") from None


def _translate(pattern: str) -> str:
    out: list[str] = []
    # For each open group (and the pattern itself, at the bottom): the scoped flag groups opened in it.
    scoped: list[list[str]] = [[]]
    index, length = 0, len(pattern)
    while index < length:
        char = pattern[index]
        if char == "\\":
            escape = pattern[index : index + 2]
            out.append(r"\Z" if escape == r"\z" else escape)
            index += 2
            continue
        if char == "[":
            end = _class_end(pattern, index)
            out.append(_posix_classes(pattern, pattern[index:end]))
            index = end
            continue
        if char == "(":
            flags = _FLAG_GROUP.match(pattern, index)
            if flags:
                on, off = flags.group(1), flags.group(2) or ""
                if "U" in on + off:
                    raise PatternError(f"{pattern!r} uses the U (ungreedy) flag, which Python has no equivalent of")
                opener = f"(?{on}" + (f"-{off}" if off else "") + ":"
                if not out and len(scoped) == 1 and not off:
                    out.append(flags.group())  # leading global flags mean the same in Python
                else:
                    out.append(opener)
                    scoped[-1].append(opener)
                index = flags.end()
                continue
            scoped.append([])
            out.append(char)
            index += 1
            continue
        if char == ")":
            out.append(")" * len(scoped.pop() if len(scoped) > 1 else []) + ")")
            index += 1
            continue
        if char == "|" and scoped[-1]:
            # A flag set before the bar ends at it in Python's scoped form: close, and reopen after.
            out.append(")" * len(scoped[-1]) + "|" + "".join(scoped[-1]))
            index += 1
            continue
        out.append(char)
        index += 1
    out.append(")" * len(scoped[0]))
    return "".join(out)


_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7F", "blank": "\\t ", "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
    "punct": "!-/:-@\\[-`{-~",
}
_POSIX_CLASS = re.compile(r"\[:(\^?)([a-z]+):\]")


def _posix_classes(pattern: str, text: str) -> str:
    """A character class with RE2's `[:alpha:]`-style classes spelled out as ranges."""

    def spelled(found: re.Match[str]) -> str:
        if found.group(1) or found.group(2) not in _POSIX_CLASSES:
            raise PatternError(f"{pattern!r} uses {found.group()}, which atlas cannot translate")
        return _POSIX_CLASSES[found.group(2)]

    return _POSIX_CLASS.sub(spelled, text)


def _class_end(pattern: str, start: int) -> int:
    """The index just past the character class opened at `start`."""
    index = start + 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
            continue
        if pattern[index] == "[" and pattern[index : index + 2] == "[:":
            close = pattern.find(":]", index + 2)
            if close >= 0:
                index = close + 2
                continue
        if pattern[index] == "]":
            return index + 1
        index += 1
    return len(pattern)
