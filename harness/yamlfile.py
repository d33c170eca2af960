"""YAML configuration files read safely, with the line of every key, so a validation error can say file:line.

`yaml.safe_load` gives the values but forgets where they came from; `yaml.compose` (with the safe loader: it builds
only the node graph and constructs no Python object) gives the positions. Both read the same text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import DataError

KeyPath = tuple[Any, ...]


@dataclass
class YamlDoc:
    """A parsed YAML file: its data and the 1-based line of each key path (("grid", "model_args.levels"), ...)."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, *keys: Any) -> int | None:
        """Line of the deepest known prefix of `keys` (an unknown key still points near its parent)."""
        for n in range(len(keys), -1, -1):
            if keys[:n] in self.lines:
                return self.lines[keys[:n]]
        return None

    def error(self, problem: str, *keys: Any) -> DataError:
        return DataError(str(self.path), problem, self.line(*keys))


def load_yaml(path: str | Path) -> YamlDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(str(path), "file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"is not UTF-8 text ({exc})") from exc
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise DataError(str(path), f"is not valid YAML: {exc.problem}", line) from exc
    except yaml.YAMLError as exc:
        raise DataError(str(path), f"is not valid YAML: {exc}") from exc
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDoc(path, data, lines)


def _walk(node: yaml.Node, prefix: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            lines[prefix + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, prefix + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _walk(item, prefix + (i,), lines)
