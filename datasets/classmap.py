"""Class maps: how the class names of several sets become anjian's taxonomy.

A class map is a YAML file::

    classes: [person, fallen_person, fire, smoke, cigarette, pallet, forklift]
    unmapped: drop            # or "error": a source class the map does not name
    map:                      # for every set; null drops the class
      Fire: fire
      default: null
    sets:                     # per-set entries override ``map``; keys are classes of that set
      fall_hospital:
        patient: person
        fall: fallen_person
        bed: null
    overlap:                  # boxes of one object labelled twice (patient + fall)
      iou: 0.7
      priority: [fallen_person, person]

A source name equal to a target class maps to itself unless the map says otherwise. Applied to
sets, a map whose names fit none of them where that silently drops a class is refused
(:meth:`ClassMap.check_names`): a class is dropped on purpose with ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from anjian.datasets.errors import ClassMapError

__all__ = ["ClassMap", "OverlapPolicy", "load_class_map"]


class _Strict(BaseModel):
    """Base of the class-map models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OverlapPolicy(_Strict):
    """How to resolve one object labelled twice after mapping."""

    iou: float = Field(
        0.7, gt=0.0, le=1.0, description="Boxes overlapping at least this much are one object."
    )
    priority: tuple[str, ...] = Field(
        (),
        description="Target classes in order of precedence: of two overlapping boxes of classes in this "
        "list, the earlier class wins. Overlapping boxes of the same class are always merged into one.",
    )


class ClassMap(_Strict):
    """Maps source class names onto a target taxonomy."""

    classes: tuple[str, ...] = Field(..., min_length=1, description="Target class names, in class-id order.")
    unmapped: Literal["drop", "error"] = Field(
        "drop", description="What to do with a source class neither the map nor the targets name."
    )
    map: dict[str, str | None] = Field(
        default_factory=dict, description="Source name to target name (null: drop)."
    )
    sets: dict[str, dict[str, str | None]] = Field(
        default_factory=dict, description="Per-set entries, overriding `map` for that set."
    )
    overlap: OverlapPolicy = Field(default_factory=OverlapPolicy, description="Duplicate-label resolution.")

    @model_validator(mode="after")
    def _targets_exist(self) -> ClassMap:
        """Every mapped-to name must be a target class."""
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes repeat a name: {list(self.classes)}")
        known = set(self.classes)
        for where, table in [("map", self.map), *((f"sets.{k}", v) for k, v in self.sets.items())]:
            wrong = sorted({t for t in table.values() if t is not None and t not in known})
            if wrong:
                raise ValueError(f"{where} maps onto {wrong}, which are not in classes {list(self.classes)}")
        wrong = [c for c in self.overlap.priority if c not in known]
        if wrong:
            raise ValueError(f"overlap.priority names {wrong}, which are not in classes")
        return self

    def target_of(self, set_name: str, source_class: str) -> str | None:
        """Target class of a source class, ``None`` to drop it.

        Raises:
            ClassMapError: The class is unmapped and ``unmapped`` is ``error``.
        """
        for table in (self.sets.get(set_name, {}), self.map):
            if source_class in table:
                return table[source_class]
        if source_class in self.classes:
            return source_class
        if self.unmapped == "error":
            raise ClassMapError(f"set {set_name!r}: class {source_class!r} is not in the class map")
        return None

    def check_names(self, sets: Mapping[str, Sequence[str]]) -> None:
        """Refuse a map whose names do not fit the sets it is applied to, where that loses a class.

        A class map is often shared (``datasets/maps/anjian.yaml`` covers every public set), so
        entries for sets or classes not being merged now are normal. What is refused:

        * a ``sets.<set>`` entry of a set being merged naming a class that set does not have;
        * a class dropped only because the map does not name it (``unmapped: drop``) while the map
          has entries that fit nothing being merged: most likely the class or set name is
          misspelt there (``Wooden-Palet``), and a whole class would be dropped without a word.

        A deliberate drop says so: ``<class>: null`` (in ``map`` or the set's entry).

        Args:
            sets: Name to class names of each set the map is applied to.

        Raises:
            ClassMapError: A name does not fit; the message lists the known names.
        """
        for set_name, table in self.sets.items():
            if set_name in sets:
                unknown = sorted(k for k in table if k not in sets[set_name])
                if unknown:
                    raise ClassMapError(
                        f"class map sets.{set_name} names {unknown}, which are not classes of set "
                        f"{set_name!r} (its classes: {list(sets[set_name])})"
                    )
        if self.unmapped != "drop":
            return  # an unnamed class is refused by target_of
        known = {c for classes in sets.values() for c in classes}
        unused_keys = sorted(k for k in self.map if k not in known)
        unused_sets = sorted(k for k in self.sets if k not in sets)
        dropped = [
            (set_name, c)
            for set_name, classes in sets.items()
            for c in classes
            if c not in self.sets.get(set_name, {}) and c not in self.map and c not in self.classes
        ]
        if not dropped or not (unused_keys or unused_sets):
            return
        hints = []
        for _, c in dropped:
            close = get_close_matches(c, unused_keys, n=1, cutoff=0.6)
            if close:
                hints.append(f"map key {close[0]!r} for class {c!r}")
        for set_name in sets:
            close = get_close_matches(set_name, unused_sets, n=1, cutoff=0.6)
            if set_name not in self.sets and close:
                hints.append(f"sets key {close[0]!r} for set {set_name!r}")
        unused = ([f"map keys {unused_keys}"] if unused_keys else []) + (
            [f"sets {unused_sets}"] if unused_sets else []
        )
        raise ClassMapError(
            "the class map does not name "
            + ", ".join(f"{c!r} of set {s!r}" for s, c in dropped[:10])
            + (f" (and {len(dropped) - 10} more)" if len(dropped) > 10 else "")
            + f", so it would be dropped (unmapped: drop), while its {' and '.join(unused)} fit nothing "
            f"being mapped (sets {sorted(sets)}, classes {sorted(known)})"
            + (f"; misspelt: {', '.join(hints)}?" if hints else "")
            + ". Correct the name, or map the class to null to drop it on purpose"
        )

    def id_table(self, set_name: str, source_classes: tuple[str, ...]) -> list[int | None]:
        """Source class id to target class id (``None``: dropped) for one set."""
        index = {c: i for i, c in enumerate(self.classes)}
        table: list[int | None] = []
        for name in source_classes:
            target = self.target_of(set_name, name)
            table.append(None if target is None else index[target])
        return table

    @classmethod
    def identity(cls, classes: tuple[str, ...]) -> ClassMap:
        """The map that keeps these classes and drops every other."""
        return cls(classes=classes)


def load_class_map(path: Path) -> ClassMap:
    """Read a class map YAML file.

    Raises:
        ClassMapError: The file is unreadable or invalid; the message says where.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClassMapError(f"cannot read class map {path}: {exc}") from exc
    try:
        return ClassMap.model_validate(raw)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ClassMapError(f"{path}: {errors}") from None
