"""The bounded field types of the site YAML accept their range and refuse what lies outside it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from anjian.cameras.fields import HostName, TcpPort


@pytest.mark.parametrize(
    ("field_type", "good", "bad", "message"),
    [
        (TcpPort, [1, 502, 65535], [0, 65536, -1], "Input should be (greater|less) than or equal to"),
        (HostName, ["10.0.0.9", "smtp.example.com", "h" * 253], ["", "h" * 254], "String should have at"),
    ],
    ids=["tcp-port", "host-name"],
)
def test_a_field_type_accepts_its_range_and_refuses_the_rest(
    field_type: Any, good: list[Any], bad: list[Any], message: str
) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(field_type)
    assert [adapter.validate_python(value) for value in good] == good
    for value in bad:
        with pytest.raises(ValidationError, match=message):
            adapter.validate_python(value)
