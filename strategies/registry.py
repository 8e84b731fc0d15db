"""Find strategy classes by the name the config gives, and build their params.

A config names a strategy in one of three ways:

- a built-in name: "sma_cross";
- an importable class: "package.module:ClassName";
- a class in a file: "path/to/file.py:ClassName", so that a user adds a strategy in one
  file and names it in the config, without packaging it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path

import msgspec

from strategies.mean_reversion import MeanReversion
from strategies.momentum import Momentum
from strategies.sma_cross import SmaCross

_BUILTINS: dict[str, type] = {cls.name: cls for cls in (SmaCross, Momentum, MeanReversion)}


def builtin_names() -> list[str]:
    """The names of the built-in strategies, sorted."""
    return sorted(_BUILTINS)


def resolve(spec: str) -> type:
    """The strategy class named by `spec` (a built-in name, "module:Class" or "file.py:Class").

    Raises ValueError saying what was wrong: an unknown name (listing the built-ins), a
    missing file, module or class, or a class without the strategy shape.
    """
    builtin = _BUILTINS.get(spec)
    if builtin is not None:
        return builtin
    location, sep, class_name = spec.rpartition(":")
    if not sep or not location or not class_name:
        raise ValueError(
            f"unknown strategy {spec!r}; built-ins: {', '.join(builtin_names())}; "
            "a plugin is named 'package.module:ClassName' or 'path/to/file.py:ClassName'")
    if location.endswith(".py") or "/" in location or "\\" in location:
        module = _load_file(location, spec)
    else:
        try:
            module = importlib.import_module(location)
        except Exception as exc:   # ImportError, or whatever the module raised on import
            raise ValueError(f"strategy {spec!r}: cannot import module {location!r}: "
                             f"{type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"strategy {spec!r}: no class {class_name!r} in {location!r}")
    _check_shape(cls, spec)
    return cls


def make_params(cls: type, mapping: Mapping[str, object] | None) -> msgspec.Struct:
    """`cls.Params` built from a config mapping; ValueError names a bad key or field.

    Unknown keys are checked here too, so a plugin whose Params forgot
    forbid_unknown_fields still gets a misspelt key rejected.
    """
    params_type = cls.Params
    mapping = dict(mapping or {})
    known = params_type.__struct_encode_fields__
    for key in mapping:
        if key not in known:
            raise ValueError(f"strategy {cls.name!r}: unknown parameter {key!r}; "
                             f"known: {', '.join(known) or '(none)'}")
    try:
        return msgspec.convert(mapping, params_type)
    except msgspec.ValidationError as exc:
        raise ValueError(f"strategy {cls.name!r}: invalid parameters: {exc}") from None


def _load_file(location: str, spec: str):
    """Import the module at `location`, once per absolute path (a second resolve of the
    same file returns the same class, so params and instances stay compatible)."""
    path = Path(location).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"strategy {spec!r}: no such file {str(path)!r}")
    # Registered in sys.modules under a name derived from the path: some libraries
    # (pickle, typing.get_type_hints) look a class's module up by name.
    digest = hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    module_name = f"firetape_plugin_{path.stem}_{digest}"
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    file_spec = importlib.util.spec_from_file_location(module_name, path)
    if file_spec is None or file_spec.loader is None:
        raise ValueError(f"strategy {spec!r}: cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[module_name] = module
    try:
        file_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ValueError(f"strategy {spec!r}: error importing {str(path)!r}: "
                         f"{type(exc).__name__}: {exc}") from exc
    return module


def _check_shape(cls: type, spec: str) -> None:
    """Refuse at start-up a class the strategy stage could not drive."""
    problems = []
    if not isinstance(getattr(cls, "name", None), str):
        problems.append("a str class attribute `name`")
    params_type = getattr(cls, "Params", None)
    if not (isinstance(params_type, type) and issubclass(params_type, msgspec.Struct)):
        problems.append("a msgspec.Struct `Params`")
    if not callable(getattr(cls, "on_bar", None)):
        problems.append("a method `on_bar(bar)`")
    if problems:
        raise ValueError(f"strategy {spec!r}: {cls.__qualname__} lacks {', '.join(problems)}")
