"""The model registry: versioned detector files, a promoted version per model, rollback.

Two layers, read in this order:

- **the site registry**, a folder the analyst owns: new versions (``anjian export
  --register``), promotions, rollbacks and the site's records about any version live here.
  Which folder: the ``root`` argument (``--registry``), else the site config's
  ``model.registry``, else ``$ANJIAN_REGISTRY``, else ``$XDG_DATA_HOME/anjian/registry``
  (``~/.local/share/anjian/registry``): :func:`default_registry`.
- **the shipped registry** (:data:`SHIPPED_DIR`, ``models/registry/`` of the install):
  the models anjian releases, read-only.

Layout of each layer::

    <root>/<name>/<version>/model.onnx      the detector (ultralytics ONNX export)
    <root>/<name>/<version>/meta.json       metrics, data hash, created_at, recipe, evals ...
    <root>/<name>/<version>/card.md         the model card
    <root>/<name>/promoted                  the promoted version (one line)
    <root>/<name>/promoted@<scope>          a version promoted for one scope (site or camera)
    <root>/<name>/history.jsonl             every promotion and rollback, oldest first

**Numbering.** A version number names one model file whatever the layer. anjian's releases
number a shipped model's versions from 1 up to :data:`SITE_VERSION_START` - 1; a site's own
versions of a shipped model start at :data:`SITE_VERSION_START` (101, 102, ...), so a later
release never ships a number a site already uses. A model only the site has starts at 1.
For a shipped version the site keeps its records (evaluations, comparisons) in
``<site>/<name>/<version>/meta.json`` and ``card.md``, a folder without ``model.onnx``
(:func:`version_record_dir`); :func:`list_versions` merges them into the version's meta.

**Resolution.** ``builtin:NAME/VERSION`` is that version (site layer first).
``builtin:NAME@SCOPE`` is the site's ``promoted@SCOPE``, else as ``builtin:NAME``.
``builtin:NAME`` is the site's ``promoted``, else the shipped one (a shipped model without a
pointer serves its latest shipped version). A site promotion may name a shipped version.
Registering never changes what runs: a new version goes live only when promoted, and a
model with nothing promoted and nothing shipped does not resolve (the error says how to
promote).

**History.** Each scope's promotions form a stack, replayed from ``history.jsonl``:
``promote`` pushes, ``rollback`` pops back to the version it names, so A→B→C rolls back to B,
then to A, then to what served before the site's first promotion (the shipped version, or the
model's own pointer for a scope). Both record themselves before they write the pointer: whatever
is in force was recorded first, and a record whose pointer never landed (a crash, a full disk)
is recognised as not in force (a rollback tried again finishes it). A running pipeline polls :class:`PromotionWatch` (a few ``stat`` calls per
poll) and swaps its detector when the resolution changes. This module imports only the
standard library so the runtime can use it.

**Integrity.** A pointer naming a version whose folder is gone (deleted by hand) is an error
wherever it is read, never a silent fall-back to another version. Promotions and rollbacks of
a model hold ``<model dir>/.lock`` (``flock``) from reading what is in force to writing the
pointer, so two at once are applied one after the other and each reports what it replaced.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from platformdirs import user_data_path

from anjian.models.atomic import TEMPORARY_PREFIX, created_mode, write_atomic
from anjian.models.errors import ModelLoadError

__all__ = [
    "REGISTRY_DIR",
    "REGISTRY_ENV",
    "SHIPPED_DIR",
    "SITE_VERSION_START",
    "ModelVersion",
    "Promotion",
    "PromotionWatch",
    "Rollback",
    "builtin_model_names",
    "card_sections",
    "dangling_pointers",
    "default_registry",
    "earlier_promotions",
    "list_versions",
    "named_version",
    "next_version",
    "promote",
    "promoted_version",
    "read_meta",
    "register_version",
    "resolve_model_path",
    "rollback",
    "site_registry",
    "undo_promotion",
    "version_record_dir",
    "write_card_section",
    "write_meta",
]

SHIPPED_DIR = Path(__file__).resolve().parent / "registry"
"""The models shipped with anjian (read-only)."""

REGISTRY_DIR = SHIPPED_DIR
"""Former name of :data:`SHIPPED_DIR` (the release script writes there on purpose)."""

REGISTRY_ENV = "ANJIAN_REGISTRY"
"""Environment variable naming the site registry."""

SITE_VERSION_START = 101
"""First number of a site's own versions of a shipped model."""

_SCOPE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HISTORY = "history.jsonl"
_REGISTER_TRIES = 100  # numbers tried when registrations at once take the next one first
_LOCK = ".lock"  # in a model's folder: held while a promotion or rollback reads and writes its pointers
_STALE_STAGING_S = 3600.0  # a staging folder this old belongs to a registration that died

logger = logging.getLogger(__name__)


def default_registry() -> Path:
    """The site registry when nothing names one: ``$ANJIAN_REGISTRY``, else the user's data folder."""
    named = os.environ.get(REGISTRY_ENV)
    return Path(named).expanduser() if named else user_data_path("anjian") / "registry"


def site_registry(root: Path | None = None) -> Path:
    """The site registry folder: ``root`` when given, else :func:`default_registry`."""
    return Path(root) if root is not None else default_registry()


def _layers(root: Path | None) -> tuple[Path, ...]:
    """Registry folders in resolution order: the site's, then the shipped one."""
    site = site_registry(root)
    try:
        is_shipped = site.resolve() == SHIPPED_DIR
    except OSError:
        is_shipped = False
    return (SHIPPED_DIR,) if is_shipped else (site, SHIPPED_DIR)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model.

    Attributes:
        name: Model name (``anjian-n``).
        version: Version folder name (digits).
        directory: The version's folder.
        meta: Parsed ``meta.json`` (empty when missing), with the site's records about a
            shipped version merged in.
        is_promoted: Whether ``builtin:NAME`` resolves to it.
        is_shipped: Whether it ships with anjian (read-only) rather than being the site's.
        scopes: Scopes whose ``builtin:NAME@SCOPE`` promotion names it.
    """

    name: str
    version: str
    directory: Path
    meta: Mapping[str, Any]
    is_promoted: bool
    is_shipped: bool = False
    scopes: tuple[str, ...] = ()

    @property
    def onnx(self) -> Path:
        """The model file."""
        return self.directory / "model.onnx"

    @property
    def created_at(self) -> str:
        """ISO timestamp from the metadata, or the file's modification time."""
        created = self.meta.get("created_at")
        if created:
            return str(created)
        return datetime.fromtimestamp(self.onnx.stat().st_mtime, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Promotion:
    """What :func:`promote` did.

    Attributes:
        name: Model name.
        scope: The scope promoted for, ``None`` for the model itself.
        version: The version now promoted.
        previous: What ``builtin:NAME[@SCOPE]`` served before (``None``: nothing).
        is_changed: False when ``version`` was promoted already (nothing was written).
    """

    name: str
    scope: str | None
    version: str
    previous: str | None
    is_changed: bool


@dataclass(frozen=True, slots=True)
class Rollback:
    """What :func:`undo_promotion` did.

    Attributes:
        name: Model name.
        scope: The scope rolled back, ``None`` for the model itself.
        version: What ``builtin:NAME[@SCOPE]`` serves now (``"(none)"``: nothing).
        previous: What it served before the rollback.
    """

    name: str
    scope: str | None
    version: str
    previous: str | None


def builtin_model_names(root: Path | None = None) -> list[str]:
    """Names of the models in the site registry and the shipped one."""
    names: set[str] = set()
    for layer in _layers(root):
        if layer.is_dir():
            names.update(p.name for p in layer.iterdir() if p.is_dir() and _version_dirs(p))
    return sorted(names)


def _known_models(root: Path | None) -> str:
    """The models each layer has, for error messages."""
    layers = _layers(root)
    shipped = builtin_model_names(SHIPPED_DIR)
    if len(layers) == 1:
        return f"shipped models: {shipped or 'none'}"
    site = sorted(set(builtin_model_names(root)) - set(shipped)) or "none"
    return f"shipped models: {shipped or 'none'}; the site registry {layers[0]} adds: {site}"


def _version_dirs(model_dir: Path) -> list[Path]:
    """Version folders holding a model file, oldest first."""
    if not model_dir.is_dir():
        return []
    found = [
        p for p in model_dir.iterdir() if p.is_dir() and _is_version(p.name) and (p / "model.onnx").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name))


def _is_version(text: str) -> bool:
    """A version number as the registry writes it: ASCII digits (``"²".isdigit()`` is true, ``int`` refuses it)."""
    return text.isascii() and text.isdigit()


def _version_dir(name: str, version: str, root: Path | None) -> Path | None:
    """The folder of a version (site layer first), ``None`` when no layer has it (or it is no version number)."""
    if not _is_version(version) or not _SCOPE.match(name):
        return None
    for layer in _layers(root):
        folder = layer / name / version
        if (folder / "model.onnx").is_file():
            return folder
    return None


def _all_versions(name: str, root: Path | None) -> list[str]:
    """Every version number of a model across the layers, ascending."""
    numbers = {p.name for layer in _layers(root) for p in _version_dirs(layer / name)}
    return sorted(numbers, key=int)


def _pointer(model_dir: Path, scope: str | None) -> Path:
    """The file naming the promoted version (for a scope)."""
    if scope is not None and not _SCOPE.match(scope):
        raise ValueError(f"scope must be 1-64 letters, digits, '_', '.' or '-', got {scope!r}")
    return model_dir / ("promoted" if scope is None else f"promoted@{scope}")


def _read_pointer(path: Path) -> str | None:
    """Version named in a pointer file, or ``None``."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def _shipped_default(name: str, root: Path | None) -> str | None:
    """What the last layer serves without a site promotion: its pointer, else its latest version."""
    model_dir = _layers(root)[-1] / name
    version = _read_pointer(model_dir / "promoted")
    if version and (model_dir / version / "model.onnx").is_file():
        return version
    versions = _version_dirs(model_dir)
    return versions[-1].name if versions else None


def _named(name: str, scope: str | None, root: Path | None) -> tuple[str | None, Path | None]:
    """The version the pointers name for ``builtin:NAME[@SCOPE]`` and the site pointer naming it
    (``None`` for the shipped default), whether or not the version still exists."""
    model_dir = _layers(root)[0] / name
    pointers = ([_pointer(model_dir, scope)] if scope else []) + [_pointer(model_dir, None)]
    for pointer in pointers:
        version = _read_pointer(pointer)
        if version:
            return version, pointer
    return _shipped_default(name, root), None


def named_version(name: str, *, scope: str | None = None, root: Path | None = None) -> str | None:
    """The version the pointers of ``builtin:NAME[@SCOPE]`` name, even one whose folder is gone.

    What a promotion replaces, or a rollback undoes: unlike :func:`promoted_version` it does
    not refuse a dangling pointer, since promoting another version is how one repairs it.

    Raises:
        ValueError: The scope name is invalid.
    """
    return _named(name, scope, root)[0]


def _missing_version_message(name: str, scope: str | None, version: str, pointer: Path) -> str:
    """What to say about a pointer naming a version that no layer has."""
    label = f"{name}@{scope}" if scope and pointer.name != "promoted" else name
    return (
        f"promoted version {version} of {label} is missing (folder deleted?): promote another or "
        f"restore it (pointer {pointer})"
    )


def promoted_version(name: str, *, scope: str | None = None, root: Path | None = None) -> str | None:
    """The version ``builtin:NAME[@SCOPE]`` resolves to, ``None`` when nothing is promoted.

    The site's scope pointer wins, then the site's model pointer, then the shipped one. A pointer
    naming a version whose folder is gone is an error, not a fall-back to the next pointer or
    the shipped version: a model deleted by hand must not be replaced by another one silently.

    Raises:
        ModelLoadError: The pointer in force names a version that no layer has.
        ValueError: The scope name is invalid.
    """
    version, pointer = _named(name, scope, root)
    if version is not None and pointer is not None and _version_dir(name, version, root) is None:
        raise ModelLoadError(_missing_version_message(name, scope, version, pointer))
    return version


def dangling_pointers(name: str, *, root: Path | None = None) -> dict[str | None, str]:
    """The site's pointers of a model naming a version no layer has: scope (``None``: the model's) to version.

    For listings, which show every version and must say which promotion points nowhere.
    """
    model_dir = _layers(root)[0] / name
    pointers: dict[str | None, str] = {scope: v for scope, v in _scoped_pointers(model_dir).items()}
    model_pointer = _read_pointer(_pointer(model_dir, None))
    if model_pointer:
        pointers[None] = model_pointer
    return {s: v for s, v in pointers.items() if _version_dir(name, v, root) is None}


def _scoped_pointers(model_dir: Path) -> dict[str, str]:
    """Scope to version of every ``promoted@SCOPE`` file."""
    if not model_dir.is_dir():
        return {}
    found = {}
    for path in model_dir.glob("promoted@*"):
        version = _read_pointer(path)
        if version:
            found[path.name.partition("@")[2]] = version
    return found


def read_meta(folder: Path, *, strict: bool = False) -> dict[str, Any]:
    """A version folder's ``meta.json`` as a dict, empty when missing.

    Listings read leniently (an unreadable file reads as empty, so one bad record does not
    hide the others); what decides how a model runs (its second stage) reads ``strict``ly,
    so a damaged record is an error rather than a model that quietly runs differently.

    Args:
        folder: The version folder.
        strict: Raise on a file that exists but cannot be read, is not JSON, or is not an
            object, instead of reading it as empty.

    Raises:
        ModelLoadError: Only when ``strict``: the file names what is wrong with it.
    """
    path = folder / "meta.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if strict:
            raise ModelLoadError(f"{path}: cannot read the version's metadata: {exc}") from None
        return {}
    if not isinstance(meta, dict):
        if strict:
            raise ModelLoadError(
                f"{path}: the version's metadata must be a JSON object, got {type(meta).__name__}"
            )
        return {}
    return meta


def list_versions(name: str, *, root: Path | None = None) -> list[ModelVersion]:
    """Every version of a model in the site registry and the shipped one, oldest first.

    Raises:
        ModelLoadError: No layer has the model.
    """
    layers = _layers(root)
    if not any((layer / name).is_dir() for layer in layers):
        raise ModelLoadError(f"no model {name!r}; {_known_models(root)}")
    promoted = named_version(name, root=root)  # a dangling pointer marks no version (dangling_pointers)
    scoped = _scoped_pointers(layers[0] / name)
    folders = {p.name: p for layer in reversed(layers) for p in _version_dirs(layer / name)}  # site wins
    out = []
    for number, folder in sorted(folders.items(), key=lambda item: int(item[0])):
        is_shipped = folder.parent.parent == SHIPPED_DIR
        meta = read_meta(folder)
        if is_shipped and len(layers) > 1:  # the site's records about a shipped version
            overlay = read_meta(layers[0] / name / number)
            meta.update({k: v for k, v in overlay.items() if k not in ("name", "version", "created_at")})
        scopes = tuple(sorted(s for s, v in scoped.items() if v == number))
        out.append(ModelVersion(name, number, folder, meta, number == promoted, is_shipped, scopes))
    return out


def version_record_dir(name: str, version: str, *, root: Path | None = None) -> Path:
    """The folder where the site writes its records about a version (``meta.json``, ``card.md``).

    A site version's own folder; for a shipped version, ``<site>/<name>/<version>/`` (created
    with a ``meta.json`` saying so), since the shipped files stay read-only.

    Raises:
        ModelLoadError: No layer has the version.
    """
    folder = _version_dir(name, version, root)
    if folder is None:
        raise ModelLoadError(
            f"{name} has no version {version!r}; versions: {_all_versions(name, root) or 'none'}"
        )
    site = _layers(root)[0]
    if folder.parent.parent != SHIPPED_DIR or site == SHIPPED_DIR:
        return folder
    overlay = site / name / version
    if not (overlay / "meta.json").is_file():
        overlay.mkdir(parents=True, exist_ok=True)
        stub = {"name": name, "version": version, "shipped": True, "note": "the site's records"}
        write_atomic(overlay / "meta.json", json.dumps(stub, indent=2) + "\n")
    return overlay


def write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    """Replace a version folder's ``meta.json`` in one rename (a reader never sees half of it)."""
    write_atomic(Path(folder) / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")


def write_card_section(card: Path, section: str, markdown: str) -> None:
    """Put ``markdown`` into a model card between the markers of ``section``.

    The markers are ``<!-- anjian:SECTION:start -->`` and ``<!-- anjian:SECTION:end -->``; an
    older section is replaced in place, a new one appended. The rest of the card is kept.
    """
    start, end = f"<!-- anjian:{section}:start -->", f"<!-- anjian:{section}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}\n"
    text = card.read_text() if card.is_file() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    write_atomic(card, text)


_SECTION = re.compile(r"<!-- anjian:([\w-]+):start -->\n(.*?)\n<!-- anjian:\1:end -->", re.DOTALL)


def card_sections(card: Path) -> dict[str, str]:
    """The marked sections of a model card (:func:`write_card_section`), by name, in card order.

    A card rewritten from its ``meta.json`` (``finish --update``) puts them back: they were written by
    other commands (int8, event evaluations, comparisons) or by hand (a release note).
    """
    text = card.read_text() if card.is_file() else ""
    return {m.group(1): m.group(2) for m in _SECTION.finditer(text)}


def _history(model_dir: Path) -> list[dict[str, Any]]:
    """Promotion and rollback records, oldest first."""
    path = model_dir / _HISTORY
    if not path.is_file():
        return []
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: cannot read the promotion history: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ModelLoadError(
                f"{path}:{number}: not a JSON record ({exc}); fix or remove the line"
            ) from None
        if not isinstance(record, dict):
            raise ModelLoadError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def _scope_records(model_dir: Path, scope: str | None) -> list[dict[str, Any]]:
    """The history's records of one scope (``None``: the model's own), oldest first."""
    return [record for record in _history(model_dir) if record.get("scope") == scope]


def _stack(records: list[dict[str, Any]]) -> list[str]:
    """The promotions still in force after a scope's ``records``, oldest first.

    A promote pushes; a rollback pops back to the version it names (a rollback past promotions
    recorded but never in force pops those too; one recorded again after its pointer failed pops
    nothing more), or empties the stack when it names none (the site's promotion undone).
    """
    stack: list[str] = []
    for record in records:
        if record.get("action", "promote") != "rollback":
            if record.get("version"):
                stack.append(str(record["version"]))
            continue
        target = record.get("version")
        if target is None:
            stack.clear()
        elif str(target) in stack:
            while stack[-1] != str(target):
                stack.pop()
        elif stack:
            stack.pop()  # names a version the promotions do not: a history edited by hand
    return stack


def _unapplied_rollback(records: list[dict[str, Any]], pointer: Path) -> dict[str, Any] | None:
    """The scope's last record when it is a rollback whose pointer never landed, else ``None``.

    That is: ``pointer`` (the scope's own, not what it falls back to) still names the version the
    rollback went back from.
    """
    if not records or records[-1].get("action") != "rollback":
        return None
    last = records[-1]
    named = _read_pointer(pointer)
    return (
        last if named is not None and last.get("previous") == named and last.get("version") != named else None
    )


def earlier_promotions(name: str, *, scope: str | None = None, root: Path | None = None) -> list[str]:
    """The versions successive rollbacks would serve again, newest first, those whose folder is there.

    What a site may serve when its promoted version cannot (a model file damaged on disk, a
    promotion forced past its check): the promotions before it in the history, then what
    serves with no promotion at all (the shipped version; for a scope, the model's).
    """
    model_dir = _layers(root)[0] / name
    stack = _stack(_scope_records(model_dir, scope))
    current = named_version(name, scope=scope, root=root)
    if current in stack:
        while stack[-1] != current:
            stack.pop()  # recorded but never put in force
        stack.pop()
    fallback = named_version(name, root=root) if scope else _shipped_default(name, root)
    earlier = [*reversed(stack), *([fallback] if fallback is not None else [])]
    seen: list[str] = []
    for version in earlier:
        if version != current and version not in seen and _version_dir(name, version, root) is not None:
            seen.append(version)
    return seen


def _append_history(model_dir: Path, record: dict[str, Any]) -> None:
    """Add one record to the model's history."""
    model_dir.mkdir(parents=True, exist_ok=True)
    stamped = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **record}
    with (model_dir / _HISTORY).open("a") as fh:
        fh.write(json.dumps(stamped) + "\n")


@contextmanager
def _locked(model_dir: Path) -> Iterator[None]:
    """Hold the model folder's exclusive lock (``.lock``, ``flock``): one promotion or rollback at a time.

    The lock goes with the open file, so a process that dies holding it releases it.

    Raises:
        OSError: The folder or its lock file cannot be created (an unwritable registry).
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(model_dir / _LOCK, os.O_RDONLY | os.O_CREAT, created_mode())  # flock needs no write access
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def promote(
    name: str, version: str, *, scope: str | None = None, root: Path | None = None, note: str = ""
) -> Promotion:
    """Make ``version`` the one ``builtin:NAME[@SCOPE]`` resolves to; running pipelines pick it up.

    The pointer goes into the site registry; ``version`` may be a site or a shipped one.
    Promoting what is promoted already writes nothing. This checks only that the version has
    a model file; whether it loads and runs is the caller's check (``anjian models promote``).
    Reading what is in force, recording the promotion and writing the pointer happen under the
    model's lock, so concurrent promotions are applied in turn and each ``previous`` is exact.

    Returns:
        What changed.

    Raises:
        ModelLoadError: No layer has the version.
        ValueError: The scope name is invalid.
        OSError: The site registry cannot be written.
    """
    model_dir = _layers(root)[0] / name
    pointer = _pointer(model_dir, scope)
    if _version_dir(name, version, root) is None:
        raise ModelLoadError(
            f"{name} has no version {version!r} with a model.onnx; "
            f"versions: {_all_versions(name, root) or 'none'}"
        )
    with _locked(model_dir):
        previous = named_version(name, scope=scope, root=root)
        already = _read_pointer(pointer) if scope else previous
        if already == version:
            return Promotion(name, scope, version, previous, is_changed=False)
        # History first: a crash before the pointer's rename leaves a promotion recorded but not in
        # force, which rollback recognises; the other order lost it, and a rollback skipped a version.
        _append_history(
            model_dir,
            {"action": "promote", "scope": scope, "version": version, "previous": previous, "note": note},
        )
        write_atomic(pointer, version + "\n")
    return Promotion(name, scope, version, previous, is_changed=True)


def rollback(name: str, *, scope: str | None = None, root: Path | None = None) -> str:
    """Undo the scope's last promotion and return the version now served (:func:`undo_promotion`).

    Raises:
        ModelLoadError: There is no earlier promotion to go back to, or its model is gone.
        ValueError: The scope name is invalid.
        OSError: The site registry cannot be written.
    """
    return undo_promotion(name, scope=scope, root=root).version


def undo_promotion(name: str, *, scope: str | None = None, root: Path | None = None) -> Rollback:
    """Undo the scope's last promotion: serve again what was promoted before it.

    Walks back through the history (A→B→C, rollback: B, rollback: A). Undoing the site's
    first promotion removes its pointer, so the shipped version (for a scope: the model's
    promoted version) serves again. Runs under the model's lock, like :func:`promote`; a
    pointer naming a deleted version is rolled back like any other.

    Returns:
        The version now served and the one it replaced.

    Raises:
        ModelLoadError: There is no earlier promotion to go back to, or its model is gone.
        ValueError: The scope name is invalid.
        OSError: The site registry cannot be written.
    """
    model_dir = _layers(root)[0] / name
    pointer = _pointer(model_dir, scope)
    if not (
        model_dir / _HISTORY
    ).is_file():  # nothing was ever promoted here: no folder or lock made to say so
        raise ModelLoadError(f"{_label(name, scope)}: no earlier promoted version to roll back to")
    with _locked(model_dir):
        return _undo_locked(name, scope, root, model_dir, pointer)


def _label(name: str, scope: str | None) -> str:
    """``NAME`` or ``NAME@SCOPE``."""
    return f"{name}{'@' + scope if scope else ''}"


def _undo_locked(name: str, scope: str | None, root: Path | None, model_dir: Path, pointer: Path) -> Rollback:
    """:func:`undo_promotion`'s work, with the model's lock held."""
    label = _label(name, scope)
    records = _scope_records(model_dir, scope)
    stack = _stack(records)
    current = named_version(name, scope=scope, root=root)
    unapplied = _unapplied_rollback(records, pointer)
    if unapplied is not None:
        # Recorded, but its pointer never landed (the process died, the disk was full): the replayed
        # stack already ends where it goes, so this finishes it rather than going back one more.
        target: str | None = None if unapplied.get("version") is None else str(unapplied["version"])
    else:
        if current in stack:
            while stack[-1] != current:
                stack.pop()  # a promotion recorded but never put in force (the process died in between)
        if not stack:
            raise ModelLoadError(
                f"{label}: no earlier promoted version to roll back to (nothing promoted here)"
            )
        stack.pop()
        while stack and stack[-1] == current:
            stack.pop()  # a promotion recorded again after its pointer failed: never back to itself
        target = stack[-1] if stack else None
    if target is not None:
        if _version_dir(name, target, root) is None:
            raise ModelLoadError(f"{label}: cannot roll back to {target}: its model.onnx is gone")
        now = target
    else:
        fallback = named_version(name, root=root) if scope else _shipped_default(name, root)
        if fallback is None or (len(_layers(root)) == 1 and not scope):
            raise ModelLoadError(f"{label}: no earlier promoted version to roll back to")
        now = fallback  # what the pointers name once this scope's pointer is gone
    note = f"rollback from {current} to {now}" + ("" if target else " (the site's promotion undone)")
    # History first, as in promote: a failure before the pointer (a full disk) leaves a rollback recorded
    # but not in force, which the next rollback finishes; the other order left one in force, unrecorded.
    _append_history(
        model_dir,
        {"action": "rollback", "scope": scope, "version": target, "previous": current, "note": note},
    )
    if target is not None:
        write_atomic(pointer, target + "\n")
    else:
        pointer.unlink(missing_ok=True)
    return Rollback(name, scope, now, current)


def next_version(name: str, *, root: Path | None = None) -> str:
    """The number :func:`register_version` gives the model's next version in the site registry.

    One past the highest known version; a site registry beside shipped versions counts from
    ``SITE_VERSION_START``. A file naming its own version (ONNX metadata) is stamped with it first.
    """
    shipped = _version_dirs(SHIPPED_DIR / name) if len(_layers(root)) > 1 else []
    start = SITE_VERSION_START if shipped else 1
    return str(max([start - 1, *map(int, _all_versions(name, root))]) + 1)


def register_version(
    name: str,
    onnx_path: Path,
    meta: Mapping[str, Any],
    card_md: str,
    *,
    version: str | None = None,
    root: Path | None = None,
) -> ModelVersion:
    """Copy a model file into a new version of the site registry, with its metadata and card.

    ``meta`` gains ``name``, ``version`` and ``created_at`` when it lacks them. The new
    version is not promoted: what runs does not change until :func:`promote`.

    Args:
        name: Model name.
        onnx_path: The exported model.
        meta: Metrics, data hash, recipe ... (JSON-serialisable).
        card_md: The model card, markdown.
        version: Version folder name; the next free number when ``None`` (see the
            numbering in the module docstring).
        root: Site registry folder (:func:`site_registry`).

    Returns:
        The registered version.

    A registration killed before its rename leaves its staging folder behind (a model's size);
    each registration removes those older than an hour from the model's folder.

    Raises:
        FileExistsError: The version exists already, in this registry or shipped.
        ValueError: ``version`` is not made of digits.
        OSError: The site registry cannot be written.
    """
    layers = _layers(root)
    shipped = [p.name for p in _version_dirs(SHIPPED_DIR / name)] if len(layers) > 1 else []
    is_numbered = version is None
    version = version or next_version(name, root=root)
    if not _is_version(version):
        raise ValueError(f"versions are numbers, got {version!r}")
    if version in shipped:
        raise FileExistsError(
            f"{name} {version} is a shipped version; the site's versions of {name} start at {SITE_VERSION_START}"
        )
    model_dir = layers[0] / name
    if (model_dir / version / "model.onnx").exists():
        raise FileExistsError(f"{model_dir / version} holds a model already")
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(model_dir)
    staging = Path(tempfile.mkdtemp(prefix=TEMPORARY_PREFIX, dir=model_dir))  # not a version: no digits only
    os.chmod(staging, created_mode(is_dir=True))  # mkdtemp's 0700 would hide the version from the service
    try:
        shutil.copyfile(onnx_path, staging / "model.onnx")
        _fsync(staging / "model.onnx")
        (staging / "card.md").write_text(card_md)
        for _ in range(_REGISTER_TRIES):
            full = {
                "name": name,
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            full.update(meta)
            (staging / "meta.json").write_text(json.dumps(full, indent=2, default=str) + "\n")
            _fsync(staging / "meta.json")
            target = model_dir / version
            try:
                # All at once or not at all: a crash mid-copy left a truncated model.onnx that could be
                # listed and promoted, and two analysts registering at once both got the same number.
                os.rename(staging, target)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not is_numbered:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        raise FileExistsError(f"{target} holds a model already") from None
                    raise
                version = str(int(version) + 1)  # taken meanwhile by another registration: the next
                continue
            return ModelVersion(name, version, target, full, version == named_version(name, root=root))
        raise FileExistsError(f"{name}: no free version number after {_REGISTER_TRIES} tries")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(model_dir: Path, *, max_age_s: float = _STALE_STAGING_S) -> None:
    """Delete the ``.tmp-*`` leftovers (staging folders, pointer temporaries) of writers that died.

    Only those untouched for ``max_age_s``: a registration under way writes into its folder
    within seconds. A leftover that cannot be removed is logged and left.
    """
    cutoff = time.time() - max_age_s
    for path in model_dir.glob(f"{TEMPORARY_PREFIX}*"):
        try:
            if path.lstat().st_mtime >= cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            logger.warning("cannot remove the leftover %s of an interrupted write: %s", path, exc)
            continue
        logger.info("removed %s, left by a registration or promotion that was interrupted", path)


def _fsync(path: Path) -> None:
    """Flush a written file to disk (before the rename that makes it visible)."""
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def resolve_model_path(spec: str, *, root: Path | None = None) -> Path:
    """Turn a model spec into a file path.

    Args:
        spec: A path to a model file; ``builtin:NAME`` (the promoted version);
            ``builtin:NAME@SCOPE`` (the version promoted for that scope, else as
            ``builtin:NAME``); or ``builtin:NAME/VERSION``.
        root: Site registry folder (:func:`site_registry`); the shipped models are
            looked up after it.

    Returns:
        Path of the ONNX file.

    Raises:
        ModelLoadError: The builtin model or version does not exist, or nothing is promoted.
    """
    if not spec.startswith("builtin:"):
        return Path(spec)
    body = spec.removeprefix("builtin:")
    name, _, version = body.partition("/")
    name, _, scope = name.partition("@")
    layers = _layers(root)
    if not name or not any((layer / name).is_dir() for layer in layers):
        raise ModelLoadError(f"no builtin model {name!r}; {_known_models(root)}")
    try:
        chosen = version or promoted_version(name, scope=scope or None, root=root)
    except ValueError as exc:
        raise ModelLoadError(f"{spec!r}: {exc}") from None
    versions = ", ".join(_all_versions(name, root)) or "none"
    if chosen is None:
        raise ModelLoadError(
            f"{spec!r}: no version of {name} is promoted (versions: {versions}); "
            f"serve one with `anjian models promote {name} VERSION`"
        )
    folder = _version_dir(name, chosen, root)
    if folder is None:
        raise ModelLoadError(f"builtin model {spec!r} has no model.onnx (versions: {versions})")
    return folder / "model.onnx"


class PromotionWatch:
    """Tells a running pipeline when ``builtin:NAME[@SCOPE]`` starts resolving to another file.

    ``poll()`` costs a few ``stat`` calls, so a runner may call it every few seconds.

    Example:
        >>> watch = PromotionWatch("builtin:anjian-n")
        >>> path = watch.poll()          # None while nothing changed
        >>> if path: runner.swap_detector(load_detector(path, config)); watch.accept(path)
    """

    def __init__(self, spec: str, *, root: Path | None = None, is_strict: bool = True) -> None:
        """Start watching; the current resolution is the baseline.

        Args:
            spec: The model spec (see :func:`resolve_model_path`).
            root: Site registry folder (:func:`site_registry`), fixed for the watch's life.
            is_strict: Refuse a spec that does not resolve now; otherwise the baseline is
                nothing (``current`` ``None``) until the caller ``accept``s what it runs (a site
                whose promoted version's folder was deleted runs an earlier promotion meanwhile).

        Raises:
            ModelLoadError: The spec does not resolve now (``is_strict``).
        """
        self.spec = spec
        self._root = site_registry(root)
        self._stamp = self._signature()
        self.current: Path | None = (
            resolve_model_path(spec, root=self._root) if is_strict else self.resolved()
        )

    def _signature(self) -> tuple[Any, ...]:
        """Stat of the pointer files and model folders of each layer: changes when a promotion lands."""
        if not self.spec.startswith("builtin:") or "/" in self.spec:
            return ()
        name, _, scope = self.spec.removeprefix("builtin:").partition("@")
        paths = []
        for layer in _layers(self._root):
            model_dir = layer / name
            paths += [model_dir, _pointer(model_dir, None)] + ([_pointer(model_dir, scope)] if scope else [])
        stamps: list[Any] = []
        for path in paths:
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def poll(self) -> Path | None:
        """The newly promoted model file if the resolution changed since the last poll, else ``None``.

        A promotion pointing at a missing file (a version folder deleted by hand) is logged as
        an error once per change and ignored until it resolves: the caller keeps the model it
        runs. The file becomes ``current`` only once the caller ``accept``s it (it loaded and
        runs): one that failed to load is still what the spec resolves to, for the caller to try
        again.
        """
        stamp = self._signature()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            path = resolve_model_path(self.spec, root=self._root)
        except ModelLoadError as exc:
            logger.error(
                "%s no longer resolves, keeping the model in use (%s): %s", self.spec, self.current, exc
            )
            return None
        return None if path == self.current else path

    def resolved(self) -> Path | None:
        """What the spec resolves to now, ``None`` when it does not (a pointer to a missing file)."""
        try:
            return resolve_model_path(self.spec, root=self._root)
        except ModelLoadError:
            return None

    def accept(self, path: Path) -> None:
        """Record ``path`` as the model in use (after it was loaded and swapped in)."""
        self.current = path
