"""Reading a YAML text into a pydantic model with errors that name file, line and field."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class SourceError(ValueError):
    """A configuration text that cannot be used; the message names the place."""


def _node_at(node: yaml.Node, path: tuple[int | str, ...]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location."""
    current = node
    for part in path:
        if isinstance(current, yaml.MappingNode):
            match = next((v for k, v in current.value if k.value == part), None)
            if match is None:
                return current
            current = match
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                return current
            current = current.value[part]
        else:
            return current
    return current


def _location(path: tuple[int | str, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_yaml_model(text: str, source: str, model: type[M], **context: Any) -> M:
    """Validate ``text`` as ``model``; raise ``SourceError`` naming the line of the first fault."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else "?"
        raise SourceError(f"{source}, line {line}: not valid YAML: {exc.problem}") from exc
    if root is None:
        raise SourceError(f"{source}: the file is empty")
    try:
        return model.model_validate(data, context=context or None)
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            path = tuple(p for p in error["loc"] if isinstance(p, int | str))
            node = _node_at(root, path)
            messages.append(
                f"{source}, line {node.start_mark.line + 1}: {_location(path)}: {error['msg']}"
            )
        raise SourceError("\n".join(messages)) from exc
