"""Reading a YAML text into a pydantic model with errors that name file, line and field."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]


class SourceError(ValueError):
    """A configuration text that cannot be used; the message names the place."""


class NestedProblems(ValueError):
    """Faults a model validator found, each at a path below the model that found them."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{dotted(path)}: {text}" for path, text in self.problems))


def dotted(path: Loc) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def node_at(node: yaml.Node, path: Loc) -> yaml.Node:
    """The deepest YAML node along ``path`` (the last one when a key is missing)."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            values = [v for k, v in node.value if k.value == part]
            if not values:
                return node
            node = values[-1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _compose(text: str, source: str, error: type[SourceError]) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and the plain data it stands for."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            return root, loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise error(f"{source}{where}: not valid YAML: {exc.problem}") from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise error(
            f"{source}, line {line}: not valid YAML: character #x{exc.character:04x} is not allowed"
        ) from exc
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}") from exc


def _duplicate_keys(node: yaml.Node, path: Loc) -> Iterator[tuple[Loc, str]]:
    """Keys written twice in one mapping: YAML would silently keep the last one."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value in seen:
                yield (*path, key.value), "appears twice in the same mapping"
            seen.add(key.value)
            yield from _duplicate_keys(value, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index))


def _faults(exc: ValidationError) -> Iterator[tuple[Loc, str]]:
    """Pydantic errors as (path, message); nested problems get their own deeper paths."""
    for error in exc.errors():
        path = tuple(part for part in error["loc"] if isinstance(part, int | str))
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, NestedProblems):
            for below, message in cause.problems:
                yield path + below, message
        elif isinstance(cause, ValueError):
            yield path, str(cause)
        else:
            yield path, error["msg"]


def parse_yaml_model(
    text: str, source: str, model: type[M], *, error: type[SourceError] = SourceError
) -> M:
    """Validate ``text`` as ``model``; raise ``error`` naming the line of every fault."""
    root, data = _compose(text, source, error)
    if root is None:
        raise error(f"{source}: the file is empty")
    faults = [
        f"{source}, line {node_at(root, path).start_mark.line + 1}: {dotted(path)}: {message}"
        for path, message in _duplicate_keys(root, ())
    ]
    if faults:
        raise error("\n".join(faults))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for path, message in _faults(exc):
            line = node_at(root, path).start_mark.line + 1
            faults.append(f"{source}, line {line}: {dotted(path)}: {message}")
        raise error("\n".join(faults)) from exc
