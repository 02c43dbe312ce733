"""Hypothesis strategies that mangle a valid document (a config, a bus message) the way people and peers do.

Values replaced by any value (edge values first among them), fields dropped, fields added:
what a fuzz test feeds a parser that must read the document or refuse it by name.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

__all__ = ["any_value", "mangled"]


def any_value(edges: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Any JSON-like value, nested a little, with ``edges`` (values at a field's limits) among the leaves."""
    leaves = edges | st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )


def _places(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every ``(container, key)`` of a parsed document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _places(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _places(value)


@st.composite
def mangled(draw: st.DrawFn, document: dict[str, Any], values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """A copy of ``document`` with one to four of its values replaced by ``values``, fields dropped or added."""
    mangled_document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        places = list(_places(mangled_document))
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            container[key] = draw(values)
        elif action == "drop":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(min_size=1, max_size=8))] = draw(values)
        else:
            container.append(draw(values))
    return mangled_document
