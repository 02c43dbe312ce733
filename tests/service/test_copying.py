"""copy_fields: one typed record from another's fields of the same names."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from anjian.service.copying import copy_fields


@dataclass(frozen=True)
class _Row:
    id: int
    state: str
    note: str


@dataclass(frozen=True)
class _Record:
    id: int
    state: tuple[str, ...]
    note: str


class _Out(BaseModel):
    id: int
    note: str
    has_note: bool


def test_copy_fields_copies_same_names_and_takes_converted_ones() -> None:
    row = _Row(id=7, state="raised", note="hi")

    assert copy_fields(_Record, row, state=(row.state,)) == _Record(id=7, state=("raised",), note="hi")
    assert copy_fields(_Out, row, has_note=True) == _Out(id=7, note="hi", has_note=True)


def test_copy_fields_refuses_a_converted_field_the_target_lacks() -> None:
    with pytest.raises(TypeError, match="_Record has no field colour"):
        copy_fields(_Record, _Row(id=1, state="", note=""), colour="red")


def test_copy_fields_names_a_field_the_source_lacks() -> None:
    with pytest.raises(AttributeError, match="has_note"):
        copy_fields(_Out, _Row(id=1, state="", note=""))


def test_copy_fields_refuses_a_plain_class() -> None:
    with pytest.raises(TypeError, match="expected a dataclass or a pydantic model class"):
        copy_fields(dict, _Row(id=1, state="", note=""))
