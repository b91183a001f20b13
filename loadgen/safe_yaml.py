"""YAML the rig reads from files it is handed (profiles, studies, ``--set`` values), with limits.

Why: profiles are shared files, and ``yaml.safe_load`` has no limits of its own. An alias bomb in a free-form
field (``request.extra_body``: nine anchors of nine aliases each) loads as a few shared objects and then
expands to billions of nodes the moment anything walks it (validation, the manifest's JSON): 3 GB in 36 s.
100,000-deep nesting overflows the parser's recursion (a traceback), and a 70 MB profile took 106 s and 1.3 GB
to be refused. Here each is refused before it is built, in well under a second, naming the limit:

- ``MAX_BYTES``: a profile or study is a page of settings; the file's size is checked before it is read;
- ``MAX_DEPTH``: nesting, counted while the parser descends (so it never reaches Python's recursion limit);
- ``MAX_NODES``: the number of values the document would have with every alias expanded, computed on the
  parsed node graph without expanding it (a recursive alias is refused as such).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000


class YAMLLimitError(ValueError):
    """A document past one of the limits (module docstring); the message names the limit."""


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth as it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep (the limit for a settings file)")
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


def expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for with every alias expanded: shared nodes are counted once per use,
    computed once each (so a bomb is measured without being built)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YAMLLimitError("an alias refers to a node that contains it (a recursive document)")
    open_nodes.add(key)
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(expanded_size(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(expanded_size(k, sizes, open_nodes) + expanded_size(v, sizes, open_nodes) for k, v in node.value)
    else:
        size = 1
    open_nodes.discard(key)
    sizes[key] = size
    if size > MAX_NODES:
        raise YAMLLimitError(f"expands to more than {MAX_NODES:,} values with its aliases (the limit for a settings "
                             "file; a YAML alias bomb?)")
    return size


def loads(text: str) -> Any:
    """``yaml.safe_load`` within the limits; ``YAMLLimitError`` (a ValueError) past one, ``yaml.YAMLError`` for
    YAML that does not parse."""
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_file(path: Path, what: str = "file") -> Any:
    """A YAML (or JSON) settings file within the limits, its size checked before it is read."""
    size = Path(path).stat().st_size
    if size > MAX_BYTES:
        raise YAMLLimitError(f"{path}: {size:,} bytes; a {what} is at most {MAX_BYTES:,} bytes")
    try:
        return loads(Path(path).read_text(encoding="utf-8"))
    except YAMLLimitError as exc:
        raise YAMLLimitError(f"{path}: {exc}") from None
