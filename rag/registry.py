"""The operator registry: every YAML ``op: NAME`` resolves here, in one hop.

An operator is a class with a pydantic ``Params`` model, registered with :func:`operator`::

    @operator("bm25", kind="retriever")
    class BM25Retriever(StepOperator):
        class Params(OperatorParams):
            top_k: int = 100
        def __call__(self, state, ctx): ...

Built-in operators live in the packages ``rag.ops``, ``chunkers``, ``retrievers`` and ``graph``; every
module in them is imported on first lookup (modules import heavy libraries such as torch lazily, inside
functions). Third-party operators register through the entry-point group ``ragloom.operators``: each
entry point names a module (or a callable) that registers its operators when loaded.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import UnionType
from typing import Any, Callable, ClassVar, Iterable, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from rag.errors import ConfigError

#: The kinds of operator, by the role they play in a flow or an index.
KINDS = ("chunker", "structure", "retriever", "step", "merge", "router", "judge")
#: Kinds that transform a query state and so may stand as a plain flow step.
STEP_KINDS = ("retriever", "step")

BUILTIN_PACKAGES = ("rag.ops", "chunkers", "retrievers", "graph")
#: the package holding every built-in operator of a kind, imported alone for a lookup of that kind (importing
#: them all takes networkx and scipy too: 0.25 s, and ~50,000 objects every full garbage collection walks)
KIND_PACKAGES = {"chunker": "chunkers"}
ENTRY_POINT_GROUP = "ragloom.operators"


class StrictModel(BaseModel):
    """Base of the models a config is read into: unknown keys are errors, values are immutable, a number is never
    given as ``true`` / ``false`` and a boolean only as one (pydantic would read ``true`` as 1, and ``"no"``,
    ``"off"`` or ``0`` as false: YAML 1.2 reads them as a string and a number, and so do we)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_only_as_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        kinds = _kinds(cls.model_fields[info.field_name].annotation)
        if Any in kinds:
            return value
        if isinstance(value, bool) and kinds & {int, float} and bool not in kinds:
            raise ValueError(f"expected a number, got {str(value).lower()}")
        if not isinstance(value, bool) and value is not None and bool in kinds and kinds <= {bool, type(None)}:
            raise ValueError(f"expected true or false, got {value!r}")
        return value


class OperatorParams(StrictModel):
    """Base of every operator's parameter model (:class:`StrictModel`)."""


def _kinds(annotation: Any) -> set:
    """The types a field annotated ``annotation`` takes (``Optional`` and unions looked through)."""
    return set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}


class Operator:
    """Base of every operator. All configuration is in ``__init__`` (validated by ``Params``)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Params: ClassVar[type[OperatorParams]] = OperatorParams

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(type(self), params)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    kind: str
    cls: type[Operator]

    @property
    def params_model(self) -> type[OperatorParams]:
        return self.cls.Params

    @property
    def summary(self) -> str:
        """The docstring's first paragraph as one line (its first line alone can stop mid-sentence)."""
        return " ".join(re.split(r"\n\s*\n", (self.cls.__doc__ or "").strip())[0].split())


#: Keyed by (group, name): index structures and query operators are separate namespaces, so the YAML
#: ``index.structures: [bm25]`` and the flow step ``{op: bm25}`` may share a name.
_registry: dict[tuple[str, str], OperatorSpec] = {}
_loaded = False
_loading = False
_loaded_packages: set[str] = set()  # built-in packages whose modules are all imported

T = TypeVar("T", bound=type)


def _group(kind: str) -> str:
    """The namespace a kind registers in: ``"structure"`` for index structures, ``"op"`` for the rest."""
    return "structure" if kind == "structure" else "op"


def operator(name: str, kind: str) -> Callable[[T], T]:
    """Class decorator registering an operator under ``name``; a name may be registered once."""
    if kind not in KINDS:
        raise ValueError(f"unknown operator kind {kind!r}; kinds are {', '.join(KINDS)}")

    def register(cls: T) -> T:
        existing = _registry.get((_group(kind), name))
        if existing is not None and existing.cls is not cls:
            if f"{existing.cls.__module__}.{existing.cls.__qualname__}" != f"{cls.__module__}.{cls.__qualname__}":
                raise ValueError(
                    f"operator {name!r} is already registered by {existing.cls.__module__}.{existing.cls.__qualname__}"
                )
        cls.name = name
        cls.kind = kind
        _registry[(_group(kind), name)] = OperatorSpec(name, kind, cls)
        return cls

    return register


def _load_package(package_name: str) -> None:
    """Import every public module of one built-in package (each registers its operators), once: listing the
    package's folder again on every lookup was most of a ``get_chunker`` call."""
    if package_name in _loaded_packages:
        return
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."):
        if not module.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(module.name)
    _loaded_packages.add(package_name)


def _load_builtins() -> None:
    global _loaded, _loading
    if _loaded or _loading:
        return
    _loading = True
    try:
        for package_name in BUILTIN_PACKAGES:
            _load_package(package_name)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            loaded = entry.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        _loaded = True
    finally:
        _loading = False


def registered(kind: str | Iterable[str] | None = None) -> list[OperatorSpec]:
    """All registered operators, optionally of the given kind(s), sorted by name."""
    _load_builtins()
    kinds = (kind,) if isinstance(kind, str) else tuple(kind) if kind else None
    return sorted((s for s in _registry.values() if kinds is None or s.kind in kinds), key=lambda s: s.name)


def get_spec(name: str, kinds: str | Iterable[str] | None = None, path: str = "op") -> OperatorSpec:
    """The operator registered as ``name``; a :class:`ConfigError` listing valid names otherwise."""
    wanted = (kinds,) if isinstance(kinds, str) else tuple(kinds) if kinds else None
    if not _loaded and wanted and all(kind in KIND_PACKAGES for kind in wanted):
        # one kind's own package first: a chunker needs neither networkx nor the retrievers' libraries
        for package_name in {KIND_PACKAGES[kind] for kind in wanted}:
            _load_package(package_name)
        spec = _registry.get(("op", name))
        if spec is not None and spec.kind in wanted:
            return spec
    _load_builtins()
    candidates = [s for s in (_registry.get(("op", name)), _registry.get(("structure", name))) if s is not None]
    spec = next((s for s in candidates if wanted is None or s.kind in wanted), None)
    if spec is None:
        valid = ", ".join(s.name for s in registered(wanted))
        what = f"{'/'.join(wanted)} operator" if wanted else "operator"
        if candidates:
            raise ConfigError(f"{name!r} is a {candidates[0].kind} operator, not a {what}; valid: {valid}", path)
        raise ConfigError(f"unknown {what} {name!r}; valid: {valid}", path)
    return spec


def validate_params(cls: type[Operator], params: dict[str, Any], path: str = "") -> OperatorParams:
    """``cls.Params(**params)`` with pydantic's errors turned into a :class:`ConfigError` naming the key."""
    _check_key_names(cls, params, path)
    try:
        return cls.Params(**params)
    except ValidationError as exc:
        raise params_error(exc, cls, path) from None
    except ConfigError as exc:  # raised by a Params validator, with a path relative to the params
        if path and not exc.path.startswith(path):
            raise ConfigError(exc.message, f"{path}.{exc.path}" if exc.path else path) from None
        raise


def _check_key_names(cls: type[Operator], params: dict[Any, Any], path: str) -> None:
    """A :class:`ConfigError` for a key that is not a string: YAML reads ``1:``, ``true:`` or ``null:`` as a
    number, a boolean or None, which no param is named (Python would stop at ``**params``)."""
    key = next((key for key in params if not isinstance(key, str)), None)
    if key is not None or None in params:
        valid = ", ".join(cls.Params.model_fields)
        raise ConfigError(f"unknown key {key!r} for op {cls.name!r}: YAML reads it as {type(key).__name__}, not a "
                          f"name; valid keys: {valid or '(none)'}", f"{path}.{key}" if path else str(key))


_KIND_NAMES = {"dict": "a mapping", "str": "a string", "list": "a list", "int": "an integer", "float": "a number",
               "bool": "true or false"}


def params_error(exc: ValidationError, cls: type[Operator], path: str) -> ConfigError:
    err = exc.errors()[0]
    members = _union_members(exc.errors(), err["loc"])
    if members:  # the value fits no member of a union: name the key, not pydantic's tag of one member
        loc = ".".join(str(p) for p in err["loc"][:-1])
        kinds = [_KIND_NAMES.get(m.split("[")[0], m) for m in members]
        return ConfigError(f"must be {' or '.join(dict.fromkeys(kinds))} (got {err.get('input')!r})",
                           f"{path}.{loc}" if path and loc else (path or loc))
    loc = ".".join(str(p) for p in err["loc"])
    key_path = f"{path}.{loc}" if path and loc else (path or loc)
    if err["type"] == "extra_forbidden":
        owner = _model_holding(cls.Params, err["loc"])
        valid = ", ".join(owner.model_fields) if owner else ""
        where = f"op {cls.name!r}" if owner is cls.Params or owner is None else f"{err['loc'][-2]!r} of op {cls.name!r}"
        message = f"unknown key {err['loc'][-1]!r} for {where}; valid keys: {valid or '(none)'}"
    elif err["type"] == "missing":
        message = f"is required by op {cls.name!r}"
    elif err["type"] == "value_error" and "error" in err.get("ctx", {}):  # a validator's own message, unprefixed
        message = str(err["ctx"]["error"])
    else:
        message = f"{err['msg']} (got {err.get('input')!r})"
    return ConfigError(message, key_path)


def _union_members(errors: list[dict], loc: tuple) -> list[str]:
    """pydantic's tags of the union members a value failed (``dict[str,any]``, ``str``), when the first error is one
    of several raised at the same place, one per member, the same input failing each; else []."""
    if len(loc) < 2 or not isinstance(loc[-1], str):
        return []
    same = [e for e in errors if len(e["loc"]) == len(loc) and e["loc"][:-1] == loc[:-1]
            and isinstance(e["loc"][-1], str) and e.get("input") is errors[0].get("input")]
    return [e["loc"][-1] for e in same] if len({e["loc"][-1] for e in same}) > 1 else []


def _model_holding(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model whose field the last part of ``loc`` would be (a nested settings model such as a
    chunker's ``embedder``), or None when ``loc`` goes through something else (a list, a dict)."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return None
        model = inner
    return model


def create(name: str, params: dict[str, Any] | None = None, kinds: str | Iterable[str] | None = None,
           path: str = "") -> Operator:
    """Instantiate the operator ``name`` with validated ``params``."""
    spec = get_spec(name, kinds, f"{path}.op" if path else "op")
    _check_key_names(spec.cls, params or {}, path)
    try:
        return spec.cls(**(params or {}))
    except ValidationError as exc:
        raise params_error(exc, spec.cls, path) from None
    except ConfigError as exc:
        if path and not exc.path.startswith(path):
            raise ConfigError(exc.message, f"{path}.{exc.path}" if exc.path else path) from None
        raise
