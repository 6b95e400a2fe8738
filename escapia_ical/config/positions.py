"""YAML loading that remembers where every key and list item was written.

PyYAML's ``safe_load`` forgets line numbers; the composer's node tree keeps them. This
module walks that tree itself, building plain Python values plus a ``{path: line}`` map,
so that configuration problems can be reported as ``FILE:LINE: key: what is wrong``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import yaml

from escapia_ical.errors import ConfigError

KeyPath = tuple[str | int, ...]  # ("accounts", 0, "name"); () is the document root

# How many nodes aliases may add to the document in all. A real config shares a few
# settings (``<<: *defaults`` per account: tens of nodes each); nine nested aliases repeated
# nine times (an "alias bomb", a few hundred bytes) would build 9**9 nodes and gigabytes.
ALIAS_NODE_BUDGET = 100_000


class Problem(NamedTuple):
    """One thing wrong with the document: where (key path, optional line) and what."""

    path: KeyPath
    message: str
    line: int | None = None  # None: look the path up in the line map


class Document(NamedTuple):
    """A parsed YAML document: its plain value, where each path was written, and problems."""

    value: Any
    lines: dict[KeyPath, int]
    problems: list[Problem]


def format_path(path: KeyPath) -> str:
    """Given a key path, return its dotted form: ``accounts[0].http.read_timeout``.

    The document root is ``(top)``.
    """
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def one_line(text: str) -> str:
    """Return ``text`` with every non-printable character (line breaks, controls, lone
    surrogates) escaped, so that a message stays one line and cannot forge others."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """Given the line map and a path, return the line of the path or its nearest ancestor."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 1)


def load_yaml(text: str, filename: str) -> Document:
    """Given YAML text, return its value, line map and duplicate-key/construct problems.

    Raise ConfigError (``FILE:LINE: (yaml): problem``) if the text is not well-formed YAML,
    or if its aliases would expand to more than ALIAS_NODE_BUDGET nodes.
    An empty document has the value None.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader already refuses some characters
        root = loader.get_single_node()
        if root is None:
            return Document(None, {(): 1}, [])
        _check_alias_expansion(root, filename)
        walker = _Walker(loader)
        value = walker.walk(root, ())
        walker.lines[()] = root.start_mark.line + 1
        return Document(value, walker.lines, walker.problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{filename}{line}: (yaml): {one_line(str(exc.problem or exc))}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: (yaml): {one_line(str(exc))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_alias_expansion(root: yaml.Node, filename: str) -> None:
    """Raise ConfigError if walking ``root`` would visit more than ALIAS_NODE_BUDGET nodes
    through aliases (merge keys included).

    The composer shares an anchored node between its aliases, so the node graph stays
    as small as the text; it is the walk (and ``flatten_mapping``) that would expand it.
    Sizes are memoised per node, so this costs one pass over the distinct nodes.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:  # nodes in the expanded tree under ``node``
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in in_progress:  # a recursive alias: the walker reports it
            return 1
        in_progress.add(id(node))
        total = 1 + sum(size(child) for child in _children(node))
        in_progress.discard(id(node))
        sizes[id(node)] = total
        return total

    seen: set[int] = set()
    expanded = 0

    def visit(node: yaml.Node) -> None:  # in document order: the first use is no alias
        nonlocal expanded
        seen.add(id(node))
        for child in _children(node):
            if id(child) not in seen:
                visit(child)
                continue
            expanded += size(child)
            if expanded > ALIAS_NODE_BUDGET:
                raise ConfigError(f"{filename}:{node.start_mark.line + 1}: (yaml): aliases expand to "
                                  f"more than {ALIAS_NODE_BUDGET} nodes; refusing (an alias bomb?)")

    visit(root)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _Walker:
    """Turns composed nodes into plain values, recording lines and problems on the way."""

    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[Problem] = []
        self._checked: set[int] = set()  # mapping nodes already checked for duplicates
        self._active: set[int] = set()  # nodes being walked: guards recursive aliases

    def walk(self, node: yaml.Node, path: KeyPath) -> Any:
        if id(node) in self._active:
            self._add(path, "recursive alias is not supported", node)
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._add(path, f"(yaml): {exc.problem}", node)
            return None

    def _sequence(self, node: yaml.SequenceNode, path: KeyPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[path + (index,)] = item.start_mark.line + 1
            items.append(self.walk(item, path + (index,)))
        return items

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._report_duplicates(node, path)
            try:
                self.loader.flatten_mapping(node)  # resolves "<<" merge keys in place
            except yaml.constructor.ConstructorError as exc:
                self._add(path, f"(yaml): {exc.problem}", exc.problem_mark or node)
                node.value = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:  # merged entries first; own ones win
            if not isinstance(key_node, yaml.ScalarNode):
                self._add(path, "(yaml): keys must be plain scalars", key_node)
                continue
            entries.pop(key_node.value, None)
            entries[key_node.value] = (key_node, value_node)
        result = {}
        for key, (key_node, value_node) in entries.items():
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = self.walk(value_node, path + (key,))
        return result

    def _report_duplicates(self, node: yaml.MappingNode, path: KeyPath) -> None:
        first_lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in first_lines:
                message = f"duplicate key (first at line {first_lines[key_node.value]})"
                self.problems.append(Problem(path + (key_node.value,), message, line))
            else:
                first_lines[key_node.value] = line

    def _add(self, path: KeyPath, message: str, where: yaml.Node | yaml.Mark) -> None:
        mark = where if isinstance(where, yaml.Mark) else where.start_mark
        self.problems.append(Problem(path, message, mark.line + 1))


_MERGE_TAG = "tag:yaml.org,2002:merge"
