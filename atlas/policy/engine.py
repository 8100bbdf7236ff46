"""Load a directory of Rego policies once, then judge plans with it, in-process (regopy).

Conftest's conventions: every `.rego` file under the set's directory is a module (recursively;
hidden files and directories are skipped); the rules `deny` and `violation` of the evaluated
packages (`main` unless the set names others) fail the check, `warn` warns; each yields strings,
or objects with a string `msg` whose other keys are kept as details. Data documents (`.json`,
`.yaml`, `.yml`) become `data` the way OPA's loader places them: a file's content (an object) is
merged at the path of its directory relative to the set's root, whatever the file's name
(`limits.yaml` at the root gives `data.<its keys>`, `aws/limits.yaml` gives `data.aws.<its keys>`);
two files giving one key a different value is a load error naming both.

Policies must be Rego v1 (`import rego.v1` allowed, `deny contains msg if { … }`). A set that
cannot be loaded or evaluated gives an `error` result naming the file and line, never a pass: so
does an empty directory, a namespace no file declares, and a builtin error at evaluation
(regopy's strict builtin errors are on, so `to_number("x")` fails the set instead of silently
making a rule undefined).

The input is the JSON of `terraform show -json PLANFILE`. Converting it into the interpreter
costs time in proportion to its size, so only the top-level keys the set's modules read
(`input.resource_changes`, ...) are handed over, or the whole document when a module reads
`input` in a way the scan cannot follow.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regopy
import yaml
from regopy import rego_shared

from atlas.policy.results import PolicyMessage, PolicyOutcome, PolicyProblem, PolicySetResult
from atlas.policy.sets import DEFAULT_NAMESPACES, PolicySet
from atlas.policy.source import CHECK_RULES, ModuleOutline, outline

FAILURE_RULES = ("deny", "violation")
WARNING_RULES = ("warn",)
DATA_SUFFIXES = (".json", ".yaml", ".yml")

_RESULTS_PACKAGE = "atlas_policy_check_results"
_RESULTS_MODULE = "<atlas>/results.rego"
_ERROR_MESSAGE = re.compile(r"\(errormsg (\d+):")


@dataclass(frozen=True)
class _Module:
    path: str
    """Relative to the set's directory, with `/`: the name errors carry."""
    source: str
    outline: ModuleOutline


@dataclass
class CompiledPolicySet:
    """A policy set loaded into an interpreter, ready to evaluate plans (one at a time: the
    interpreter holds the input, so evaluations of one set are serialised by a lock)."""

    name: str
    directory: Path
    namespaces: tuple[str, ...]
    fingerprint: str
    files: tuple[str, ...] = ()
    errors: tuple[PolicyProblem, ...] = ()
    input_keys: frozenset[str] | None = frozenset()
    """Top-level keys of the plan the modules read; None for the whole document."""
    _modules: dict[str, _Module] = field(default_factory=dict, repr=False)
    _interpreter: regopy.Interpreter | None = field(default=None, repr=False)
    _slots: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def evaluate(self, plan: Mapping[str, Any] | str | bytes) -> PolicySetResult:
        """Judge one plan (`terraform show -json` output: text or the parsed object)."""
        if self.errors or self._interpreter is None:
            return self._result(PolicyOutcome.ERROR, errors=self.errors)
        document, problem = _plan_document(plan)
        if problem is not None:
            return self._result(PolicyOutcome.ERROR, errors=(problem,))
        return self.evaluate_input(regopy.Input(select_input(document, self.input_keys)))

    def evaluate_input(self, value: regopy.Input) -> PolicySetResult:
        """Judge a plan already converted for the interpreter (see `select_input`): a caller that
        runs several sets over one plan converts it once per distinct `input_keys`."""
        if self.errors or self._interpreter is None:
            return self._result(PolicyOutcome.ERROR, errors=self.errors)
        with self._lock:
            self._interpreter.set_input(value)
            answer, raw_errors = _query(self._interpreter, f"data.{_RESULTS_PACKAGE}")
        if raw_errors:
            problems = [p.model_copy(update={"message": f"while evaluating the plan: {p.message}"})
                        for p in self._locate(raw_errors)] or [PolicyProblem(message="evaluating the plan failed")]
            return self._result(PolicyOutcome.ERROR, errors=problems)
        return self._judge(answer)

    def _judge(self, answer: Any) -> PolicySetResult:
        failures: list[PolicyMessage] = []
        warnings: list[PolicyMessage] = []
        problems: list[PolicyProblem] = []
        values = answer if isinstance(answer, dict) else {}
        for slot, (namespace, rule) in self._slots.items():
            messages, problem = self._messages(namespace, rule, values.get(slot, []))
            if problem is not None:
                problems.append(problem)
            (warnings if rule in WARNING_RULES else failures).extend(messages)
        if problems:
            return self._result(PolicyOutcome.ERROR, failures=failures, warnings=warnings, errors=problems)
        outcome = PolicyOutcome.FAILED if failures else PolicyOutcome.PASSED
        return self._result(outcome, failures=failures, warnings=warnings)

    def _messages(self, namespace: str, rule: str, value: Any) -> tuple[list[PolicyMessage], PolicyProblem | None]:
        if value is False:
            return [], None
        if value is True:  # a boolean rule (`deny if …`)
            return [PolicyMessage(namespace=namespace, rule=rule, message=f"{namespace}.{rule} is true")], None
        if not isinstance(value, list):
            return [], self._rule_problem(
                namespace, rule,
                f"`{rule}` in package {namespace} must be a set of messages (`{rule} contains msg if {{ … }}`), "
                f"not {_kind(value)}")
        messages = []
        for item in value:
            if isinstance(item, str):
                messages.append(PolicyMessage(namespace=namespace, rule=rule, message=item))
            elif isinstance(item, dict) and isinstance(item.get("msg"), str):
                details = {k: v for k, v in item.items() if k != "msg"}
                messages.append(PolicyMessage(namespace=namespace, rule=rule, message=item["msg"], details=details))
            else:
                return messages, self._rule_problem(
                    namespace, rule,
                    f"`{rule}` in package {namespace} yielded {json.dumps(item)[:200]}, which is neither a message "
                    "string nor an object with a string `msg`")
        return messages, None

    def _rule_problem(self, namespace: str, rule: str, message: str) -> PolicyProblem:
        for module in self._modules.values():
            if module.outline.package == namespace and rule in module.outline.rules:
                return PolicyProblem(message=message, file=module.path, line=module.outline.rules[rule])
        return PolicyProblem(message=message)

    def _locate(self, raw_errors: list[str]) -> list[PolicyProblem]:
        problems: list[PolicyProblem] = []
        for text in raw_errors:
            problems.extend(_problems_from_error(text, self._modules))
        return problems

    def _result(self, outcome: PolicyOutcome, *, failures: Iterable[PolicyMessage] = (),
                warnings: Iterable[PolicyMessage] = (), errors: Iterable[PolicyProblem] = ()) -> PolicySetResult:
        return PolicySetResult(policy_set=self.name, directory=str(self.directory), outcome=outcome,
                               failures=tuple(failures), warnings=tuple(warnings), errors=tuple(errors))


def load_policy_set(directory: str | Path, *, name: str | None = None,
                    namespaces: Sequence[str] | None = DEFAULT_NAMESPACES) -> CompiledPolicySet:
    """Load and compile the policies under `directory`; `namespaces=None` evaluates every package
    the files declare (conftest's `--all-namespaces`). Never raises for a bad policy: the problems
    are in `errors`, and `evaluate` then gives an error result."""
    root = Path(directory)
    set_name = name or root.name
    rego_files, data_files = _policy_files(root)
    compiled = CompiledPolicySet(name=set_name, directory=root, namespaces=tuple(namespaces or ()),
                                 fingerprint=fingerprint(root))
    if not root.is_dir():
        compiled.errors = (PolicyProblem(message=f"policy directory {root} does not exist or is not a directory"),)
        return compiled
    if not rego_files:
        compiled.errors = (PolicyProblem(
            message=f"no .rego files in {root}: a policy set without policies would pass every plan"),)
        return compiled

    problems: list[PolicyProblem] = []
    modules: dict[str, _Module] = {}
    for path in rego_files:
        relative = path.relative_to(root).as_posix()
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(PolicyProblem(message=f"cannot read the file: {err}", file=relative))
            continue
        module = _Module(relative, source, outline(source))
        modules[relative] = module
        problems.extend(PolicyProblem(message=p.message, file=relative, line=p.line, column=p.column)
                        for p in module.outline.problems)
        if module.outline.package is None and not module.outline.problems:
            problems.append(PolicyProblem(message="no `package` declaration", file=relative, line=1))
    data, data_problems = _data_document(root, data_files)
    problems.extend(data_problems)

    declared = sorted({m.outline.package for m in modules.values() if m.outline.package})
    if namespaces is None:
        compiled.namespaces = tuple(declared)
    for namespace in compiled.namespaces:
        if namespace not in declared:
            problems.append(PolicyProblem(
                message=f"namespace {namespace!r} is not declared by any policy file (packages here: "
                        f"{', '.join(declared) or 'none'}); a namespace without policies would pass every plan"))
    compiled.files = tuple(modules)
    compiled._modules = modules
    keys: set[str] | None = set()
    for module in modules.values():
        module_keys = module.outline.input_keys
        keys = None if keys is None or module_keys is None else keys | module_keys
    compiled.input_keys = None if keys is None else frozenset(keys)
    if problems:
        compiled.errors = tuple(problems)
        return compiled

    interpreter = regopy.Interpreter()
    interpreter.log_level = regopy.LogLevel.NONE  # errors come back to us; the library would print them
    interpreter.strict_built_in_errors = True
    for module in modules.values():
        try:
            interpreter.add_module(module.path, module.source)
        except regopy.RegoError as err:
            problems.extend(_problems_from_error(str(err), modules) or
                            [PolicyProblem(message=str(err).strip(), file=module.path)])
    slots = {f"r{i}": (namespace, rule)
             for i, (namespace, rule) in enumerate((ns, rule) for ns in compiled.namespaces for rule in CHECK_RULES)}
    results_source = "package " + _RESULTS_PACKAGE + "\n\n" + "".join(
        f"default {slot} := []\n\n{slot} := data.{namespace}.{rule}\n\n" for slot, (namespace, rule) in slots.items())
    try:
        if data:
            interpreter.add_data_json(json.dumps(data))
        interpreter.add_module(_RESULTS_MODULE, results_source)
    except regopy.RegoError as err:
        problems.append(PolicyProblem(message=f"cannot load the data documents: {str(err).strip()}"))
    if not problems:
        # Compile now, against an empty plan: conflicts and unknown functions are load errors.
        interpreter.set_input(regopy.Input({}))
        _, raw_errors = _query(interpreter, f"data.{_RESULTS_PACKAGE}")
        compiled._interpreter = interpreter
        problems.extend(compiled._locate(raw_errors))
    compiled._slots = slots
    compiled.errors = tuple(problems)
    return compiled


def select_input(document: Mapping[str, Any], keys: frozenset[str] | None) -> Mapping[str, Any]:
    """The part of the plan a set's policies read: the given top-level keys, or all of it for None."""
    if keys is None:
        return document
    return {key: value for key, value in document.items() if key in keys}


def fingerprint(directory: Path) -> str:
    """A digest of the set's policy and data files (names and contents): it changes when they do."""
    digest = hashlib.sha256()
    rego_files, data_files = _policy_files(directory)
    for path in sorted(rego_files + data_files):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as err:
            digest.update(str(err).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class PolicySetCache:
    """Compiled policy sets, reused across projects and jobs until a set's files change."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, str, tuple[str, ...] | None], CompiledPolicySet] = {}
        self._lock = threading.Lock()

    def get(self, directory: str | Path, *, name: str | None = None,
            namespaces: Sequence[str] | None = DEFAULT_NAMESPACES) -> CompiledPolicySet:
        root = Path(directory)
        key = (str(root.resolve()), name or root.name, None if namespaces is None else tuple(namespaces))
        current = fingerprint(root)
        with self._lock:
            compiled = self._sets.get(key)
            if compiled is None or compiled.fingerprint != current:
                compiled = load_policy_set(root, name=name, namespaces=namespaces)
                self._sets[key] = compiled
            return compiled


def evaluate_policy_sets(policy_sets: Sequence[PolicySet], plan: Mapping[str, Any] | str | bytes,
                         cache: PolicySetCache | None = None) -> list[PolicySetResult]:
    """Judge one plan against each configured policy set, converting the plan once per distinct
    part of it the sets read."""
    cache = cache or PolicySetCache()
    compiled = [cache.get(s.path, name=s.name, namespaces=s.namespaces) for s in policy_sets]
    document, problem = _plan_document(plan)
    inputs: dict[frozenset[str] | None, regopy.Input] = {}
    results = []
    for policy_set in compiled:
        if problem is not None and not policy_set.errors:
            results.append(policy_set._result(PolicyOutcome.ERROR, errors=(problem,)))
            continue
        if policy_set.errors:
            results.append(policy_set.evaluate_input(regopy.Input({})))
            continue
        keys = policy_set.input_keys
        if keys not in inputs:
            inputs[keys] = regopy.Input(select_input(document, keys))
        results.append(policy_set.evaluate_input(inputs[keys]))
    return results


def _plan_document(plan: Mapping[str, Any] | str | bytes) -> tuple[Mapping[str, Any], PolicyProblem | None]:
    if isinstance(plan, Mapping):
        return plan, None
    try:
        document = json.loads(plan)
    except ValueError as err:
        return {}, PolicyProblem(message=f"the plan is not JSON (`terraform show -json` output expected): {err}")
    if not isinstance(document, dict):
        return {}, PolicyProblem(message=f"the plan JSON is {_kind(document)}, not an object")
    return document, None


def _policy_files(root: Path) -> tuple[list[Path], list[Path]]:
    rego: list[Path] = []
    data: list[Path] = []
    if not root.is_dir():
        return rego, data
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix == ".rego":
            rego.append(path)
        elif path.suffix in DATA_SUFFIXES:
            data.append(path)
    return rego, data


def _data_document(root: Path, files: list[Path]) -> tuple[dict[str, Any], list[PolicyProblem]]:
    document: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    problems: list[PolicyProblem] = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        content, problem = _read_data_file(path, relative)
        if problem is not None:
            problems.append(problem)
            continue
        if content is None:
            continue
        if not isinstance(content, dict):
            problems.append(PolicyProblem(
                message=f"a data document must be an object (its keys become data.…), not {_kind(content)}",
                file=relative, line=1))
            continue
        prefix = tuple(path.relative_to(root).parent.parts)
        _merge(document, prefix, content, relative, origins, problems)
    return document, problems


def _read_data_file(path: Path, relative: str) -> tuple[Any, PolicyProblem | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, PolicyProblem(message=f"cannot read the file: {err}", file=relative)
    if path.suffix == ".json":
        try:
            return json.loads(text), None
        except json.JSONDecodeError as err:
            return None, PolicyProblem(message=f"invalid JSON: {err.msg}", file=relative, line=err.lineno,
                                       column=err.colno)
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        return None, PolicyProblem(message=f"invalid YAML: {getattr(err, 'problem', None) or err}", file=relative,
                                   line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)
    if len(documents) > 1:
        return None, PolicyProblem(message="a data file must hold one YAML document, not several", file=relative)
    return (documents[0] if documents else None), None


def _merge(target: dict[str, Any], prefix: tuple[str, ...], content: dict[str, Any], origin: str,
           origins: dict[tuple[str, ...], str], problems: list[PolicyProblem]) -> None:
    node = target
    for part in prefix:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append(PolicyProblem(
                message=f"data.{'.'.join(prefix)} is already a value from {_origin(origins, prefix)}",
                file=origin))
            return
        node = child
    for key, value in content.items():
        path = (*prefix, str(key))
        if key in node:
            if isinstance(node[key], dict) and isinstance(value, dict):
                _merge(target, path, value, origin, origins, problems)
                continue
            if node[key] != value:
                problems.append(PolicyProblem(
                    message=f"data.{'.'.join(path)} is also given a different value by {_origin(origins, path)}",
                    file=origin))
            continue
        node[key] = value
        origins[path] = origin


def _origin(origins: dict[tuple[str, ...], str], path: tuple[str, ...]) -> str:
    """The file that set `path` or the nearest object above it."""
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return "another file"


def _query(interpreter: regopy.Interpreter, query: str) -> tuple[Any, list[str]]:
    """The value of a query, or the interpreter's error texts.

    regopy's `Interpreter.query` parses every answer as JSON and so raises on the error terms
    rego-cpp returns for runtime errors, losing them; these are regopy 1.5's own C bindings,
    called the way `query` calls them.
    """
    impl = rego_shared.rego_query(interpreter._impl, query)
    try:
        text = rego_shared.rego_output_string(impl)
        if not rego_shared.rego_output_ok(impl):
            node = rego_shared.rego_output_node(impl)
            errors = [rego_shared.rego_node_json(rego_shared.rego_node_get(node, i))
                      for i in range(rego_shared.rego_node_size(node))]
            return None, errors or [text]
    finally:
        rego_shared.rego_free_output(impl)
    if text == "undefined":
        return None, []
    if text.lstrip().startswith("(error"):
        return None, [text]
    answer = json.loads(text)
    expressions = answer.get("expressions", []) if isinstance(answer, dict) else []
    return (expressions[0] if expressions else None), []


def _problems_from_error(text: str, modules: Mapping[str, _Module]) -> list[PolicyProblem]:
    """Problems from rego-cpp's error terms: `(error (errormsg N:message) (errorast … N:file|offset|length …))`."""
    problems: list[PolicyProblem] = []
    blocks = [b for b in re.split(r"(?=\(error\b)", text) if b.startswith("(error")]
    for block in blocks:
        found = _ERROR_MESSAGE.search(block)
        if found is None:
            continue
        start = found.end()
        message = block[start:start + int(found.group(1))]
        problems.append(_place(message, block, modules))
    return problems


def _place(message: str, block: str, modules: Mapping[str, _Module]) -> PolicyProblem:
    for module in modules.values():
        marker = f"{len(module.path)}:{module.path}|"
        at = block.find(marker)
        if at >= 0:
            offset = re.match(r"(\d+)\|", block[at + len(marker):])
            if offset:
                line, column = _line_column(module.source, int(offset.group(1)))
                return PolicyProblem(message=message, file=module.path, line=line, column=column)
    missing = re.match(r"Function not found: ([\w.]+)", message)
    if missing:
        for module in modules.values():
            line_of_call = module.outline.calls.get(missing.group(1).split(".")[-1])
            if line_of_call is not None:
                return PolicyProblem(message=message, file=module.path, line=line_of_call)
    recursion = re.search(r"data\.([\w.]+)\.(\w+)$", message)
    if recursion:
        for module in modules.values():
            if module.outline.package == recursion.group(1) and recursion.group(2) in module.outline.rules:
                return PolicyProblem(message=message, file=module.path, line=module.outline.rules[recursion.group(2)])
    return PolicyProblem(message=message)


def _line_column(source: str, offset: int) -> tuple[int, int]:
    before = source.encode("utf-8")[:offset].decode("utf-8", errors="ignore")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
