"""Build one typed record from another's fields of the same names: rows to records, records to API models.

The service moves the same facts through three shapes: a database row
(``anjian.service.tables``), an immutable record (``anjian.service.records``) and a
response model (``anjian.service.schemas``). Their fields share names, so each copy
names only the fields that change type on the way.

Example:
    >>> copy_fields(AuditEntry, row, to_state=AlertState(row.to_state))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pydantic import BaseModel

__all__ = ["copy_fields"]

T = TypeVar("T")


def copy_fields(target: type[T], source: object, /, **converted: Any) -> T:
    """A ``target`` whose every field is ``source``'s attribute of the same name, or ``converted``'s.

    Args:
        target: A dataclass or a pydantic model class.
        source: Any object with an attribute for each field of ``target`` that
            ``converted`` does not give (a row, a record, a model).
        **converted: Values of the fields that are not copied as they are (another
            type, a derived value).

    Returns:
        The new ``target``, built (and, for a pydantic model, validated) by its class.

    Raises:
        TypeError: ``target`` is neither a dataclass nor a pydantic model, or
            ``converted`` names a field it does not have.
        AttributeError: ``source`` lacks a field that ``converted`` does not give.
    """
    if isinstance(target, type) and issubclass(target, BaseModel):
        names: list[str] = list(target.model_fields)
    elif dataclasses.is_dataclass(target):
        names = [field.name for field in dataclasses.fields(target) if field.init]
    else:
        raise TypeError(f"expected a dataclass or a pydantic model class, got {target!r}")
    unknown = sorted(set(converted) - set(names))
    if unknown:
        raise TypeError(f"{target.__name__} has no field {', '.join(unknown)}")
    values = {name: converted[name] if name in converted else getattr(source, name) for name in names}
    return cast(Callable[..., T], target)(**values)
