"""What atlas reads from a Rego module's text before the interpreter sees it.

rego-cpp (behind regopy) accepts Rego v0 rule bodies without `if` and reads `deny[msg] { … }` as an
object rule, so a v0 policy would load and quietly never deny. atlas requires Rego v1 and finds the
v0-only forms itself, with their line and column. The same scan gives each module's package, the
lines where its rules are declared (to place errors the interpreter reports without a location),
and which top-level keys of `input` the module reads (so a large plan is not handed over whole when
the policies only look at `resource_changes`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

CHECK_RULES = ("deny", "violation", "warn")
"""The rules conftest's convention evaluates (`deny` and `violation` fail, `warn` warns)."""

_OPERATORS = (":=", "==", "!=", "<=", ">=")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")", "]", "}"}
# Tokens after which a `{` at the top level opens a value (object/set literal), not a rule body.
_VALUE_BEFORE = {":=", "=", "contains", ",", "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "&", "|",
                 "in", ":", "as", "with", "not", "("}
_HEAD_KEYWORDS = {"package", "import", "default", "else"}


@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "number", "string", "op"
    text: str
    line: int
    column: int


@dataclass(frozen=True)
class SyntaxProblem:
    """A construct atlas refuses, with its 1-based line and column."""

    line: int
    column: int
    message: str


@dataclass
class ModuleOutline:
    """What one module declares and reads."""

    package: str | None = None
    package_line: int = 1
    rules: dict[str, int] = field(default_factory=dict)
    """Rule name → line of its first declaration."""
    calls: dict[str, int] = field(default_factory=dict)
    """Function name → line of its first call (to place "function not found")."""
    input_keys: frozenset[str] | None = frozenset()
    """Top-level keys of `input` the module reads; None when it reads `input` as a whole."""
    problems: list[SyntaxProblem] = field(default_factory=list)
    """Rego v0-only forms and unterminated literals; empty when the module is plain Rego v1."""


class _Unterminated(Exception):
    def __init__(self, what: str, line: int, column: int) -> None:
        super().__init__(what)
        self.what, self.line, self.column = what, line, column


def tokens(source: str) -> Iterator[Token]:
    """The tokens of a Rego module, without comments and whitespace."""
    i, line, line_start, n = 0, 1, 0, len(source)
    while i < n:
        c = source[i]
        column = i - line_start + 1
        if c == "\n":
            line, line_start = line + 1, i + 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and source[i] != "\n":
                i += 1
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                if source[j] == "\n":
                    raise _Unterminated("string", line, column)
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                raise _Unterminated("string", line, column)
            yield Token("string", source[i:j + 1], line, column)
            i = j + 1
        elif c == "`":
            j = source.find("`", i + 1)
            if j < 0:
                raise _Unterminated("raw string", line, column)
            yield Token("string", source[i:j + 1], line, column)
            newlines = source.count("\n", i, j)
            if newlines:
                line += newlines
                line_start = source.rfind("\n", i, j) + 1
            i = j + 1
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            yield Token("ident", source[i:j], line, column)
            i = j
        elif c.isdigit():
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] in "._"):
                j += 1
            yield Token("number", source[i:j], line, column)
            i = j
        else:
            op = next((o for o in _OPERATORS if source.startswith(o, i)), c)
            yield Token("op", op, line, column)
            i += len(op)


def outline(source: str) -> ModuleOutline:
    """Scan a module: its package, rules, calls, reads of `input` and Rego v0-only forms."""
    result = ModuleOutline()
    try:
        toks = list(tokens(source))
    except _Unterminated as err:
        result.problems.append(SyntaxProblem(err.line, err.column, f"unterminated {err.what}"))
        return result
    input_keys: set[str] | None = set()
    depth = 0
    for index, tok in enumerate(toks):
        prev = toks[index - 1] if index else None
        nxt = toks[index + 1] if index + 1 < len(toks) else None
        # `x.input` is an attribute (terraform_data has one); `with input as` replaces input, reads none of it.
        if tok.kind == "ident" and tok.text == "input" and not (prev and prev.text in (".", "with")):
            input_keys = _read_input_key(toks, index, input_keys)
        if tok.kind == "ident" and nxt is not None and nxt.text == "(" and not (prev and prev.text == "."):
            result.calls.setdefault(tok.text, tok.line)
        if depth == 0 and tok.kind == "ident" and (prev is None or prev.line != tok.line):
            _head(toks, index, result)
        if tok.text in _OPENERS and tok.kind == "op":
            if depth == 0 and tok.text == "{":
                _check_body_opening(prev, tok, result)
            depth += 1
        elif tok.text in _CLOSERS and tok.kind == "op":
            depth = max(depth - 1, 0)
    result.input_keys = None if input_keys is None else frozenset(input_keys)
    return result


def _read_input_key(toks: list[Token], index: int, keys: set[str] | None) -> set[str] | None:
    if keys is None:
        return None
    after = toks[index + 1:index + 4]
    if len(after) >= 2 and after[0].text == "." and after[1].kind == "ident":
        return keys | {after[1].text}
    if len(after) >= 3 and after[0].text == "[" and after[1].kind == "string" and after[2].text == "]":
        literal = after[1].text[1:-1]
        if "\\" not in literal:
            return keys | {literal}
    return None


def _head(toks: list[Token], index: int, result: ModuleOutline) -> None:
    """Record a statement that starts a line at the top level: a package, or a rule's head."""
    tok = toks[index]
    if tok.text == "package":
        parts: list[str] = []
        for part in toks[index + 1:]:
            if part.line != tok.line or not (part.kind == "ident" or part.text == "."):
                break
            parts.append(part.text)
        if result.package is None:
            result.package, result.package_line = "".join(parts), tok.line
        return
    if tok.text == "default" and index + 1 < len(toks):
        tok = toks[index + 1]
    elif tok.text in _HEAD_KEYWORDS:
        return
    result.rules.setdefault(tok.text, tok.line)
    if tok.text in CHECK_RULES and index + 1 < len(toks) and toks[index + 1].text == "[":
        closing = _matching(toks, index + 1)
        after = toks[closing + 1] if closing is not None and closing + 1 < len(toks) else None
        if after is not None and after.text in ("{", "if"):
            result.problems.append(SyntaxProblem(
                tok.line, tok.column,
                f"`{tok.text}[…]` is Rego v0 partial-set syntax; in Rego v1 write `{tok.text} contains msg if {{ … }}`",
            ))


def _matching(toks: list[Token], opening: int) -> int | None:
    depth = 0
    for index in range(opening, len(toks)):
        text = toks[index].text
        if toks[index].kind != "op":
            continue
        if text in _OPENERS:
            depth += 1
        elif text in _CLOSERS:
            depth -= 1
            if depth == 0:
                return index
    return None


def _check_body_opening(prev: Token | None, brace: Token, result: ModuleOutline) -> None:
    if prev is None or prev.text == "if" or (prev.text in _VALUE_BEFORE and prev.kind in ("op", "ident")):
        return
    if any(p.line == brace.line for p in result.problems):
        return  # one problem per line: a v0 partial set head already explains this body
    if prev.text == "else":
        message = "`else { … }` is Rego v0 syntax; in Rego v1 write `else := value if { … }`"
    else:
        message = "a rule body without `if` is Rego v0 syntax; in Rego v1 write `<rule head> if { … }`"
    result.problems.append(SyntaxProblem(brace.line, brace.column, message))
