"""``registry_of_site_config``: the analysts' commands find the registry a site runs from, and a broken site
YAML is named without quoting its lines (they may hold camera passwords)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.models.config import registry_of_site_config


def test_a_relative_registry_resolves_against_the_site_yaml_and_none_when_unset(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("model: {registry: models}\nsite: {id: s}\n", encoding="utf-8")
    assert registry_of_site_config(site) == tmp_path / "models"
    site.write_text("site: {id: s}\n", encoding="utf-8")
    assert registry_of_site_config(site) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'site:\n  workshops: [{cameras: [{url: "rtsp://admin:pa55word@10.0.0.9/1"}\n',
            r"site\.yaml: not valid YAML at line \d+, column \d+: .*`anjian config check` shows the line",
        ),
        ("site: " + "[" * 3000 + "]" * 3000 + "\n", r"site\.yaml: lists or mappings nested too deep to read"),
        ("model: {registry: [1, 2]}\n", r"site\.yaml: model\.registry: "),
    ],
    ids=["broken-line-with-a-password", "nested-3000-deep", "registry-a-list"],
)
def test_a_site_yaml_it_cannot_use_is_named_without_quoting_it(
    tmp_path: Path, text: str, message: str
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        registry_of_site_config(site)
    assert "pa55word" not in str(info.value)
