"""Parameters as data: each is declared once, as a :class:`Param` or as a settings dataclass's
field made with :func:`param` (read back with :func:`declared`).

The SDK validates a call against the declaration (:func:`resolve`), the operator forms are built
from it and the settings the algorithms run with are the same dataclass, so the App, the SDK and
the engine cannot disagree.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Optional, Sequence, TypeVar

from .errors import CondensationError

Function = TypeVar("Function", bound=Callable)


@dataclass(frozen=True)
class Param:
    """One method parameter: name, type, default, allowed values or range, one line of help.

    ``optional``: ``None`` is allowed (the method then picks, e.g. from IPC). ``objects``: a
    Python object (a model the user already has) is accepted besides the declared choices.
    ``when``: the parameter matters only when other parameters have these values (forms hide it
    otherwise; the SDK still accepts it). ``form``: whether the App's forms offer it (some, like a
    background colour tuple or a cache bound, are for the SDK only). ``parse``: for an open set of
    values, a function that gives a value's canonical form or raises ``ValueError`` with a message
    that starts ``must be``; ``choices`` are then what the forms offer, not a limit. ``path``: the
    value names a file or folder on the machine that runs it, ``"local"`` (always a path) or ``"hub"``
    (a Hugging Face hub id or a local folder); the SDK takes any, the App's forms confine them.
    """

    name: str
    type: type
    default: Any
    help: str
    label: str = ""
    choices: Optional[tuple] = None
    min: Optional[float] = None
    max: Optional[float] = None
    optional: bool = False
    objects: bool = False
    when: Optional[dict] = None
    form: bool = True
    parse: Optional[Callable[[Any], Any]] = None
    path: Optional[str] = None
    annotation: Any = None  # the declaring field's type annotation, for generated signatures

    def check(self, value: Any, method: str) -> Any:
        """``value`` converted to the declared type, or a :class:`CondensationError` saying why not."""
        if value is None and (self.optional or self.default is None):
            return None
        if self.objects and not isinstance(value, (str, int, float, bool)):
            return self._parsed(value, method)
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            raise CondensationError(f"{method}: {self.name} must be {self.type.__name__}, got {value!r}") from None
        if self.parse is not None:
            return self._parsed(converted, method)
        if self.choices is not None and converted not in self.choices:
            raise CondensationError(f"{method}: {self.name} must be one of {list(self.choices)}, got {value!r}")
        if self.min is not None and converted < self.min or self.max is not None and converted > self.max:
            raise CondensationError(f"{method}: {self.name}={value!r} is out of range: it must be {self.bounds()}")
        return converted

    def _parsed(self, value: Any, method: str) -> Any:
        if self.parse is None:
            return value
        try:
            return self.parse(value)
        except ValueError as error:
            raise CondensationError(f"{method}: {self.name} {error}") from None

    def bounds(self) -> str:
        """The allowed range in words: ``between 0 and 1``, ``at least 1`` or ``at most 1``."""
        low, high = self.min, self.max
        if low is not None and high is not None:
            return f"between {low} and {high}"
        return f"at least {low}" if low is not None else f"at most {high}"

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if not isinstance(value, (bool, int)):
                raise TypeError
            return bool(value)
        if self.type is int and (isinstance(value, bool) or float(value) != int(value)):
            raise ValueError
        if self.type is str and not isinstance(value, str):
            raise TypeError
        return self.type(value)

    def applies(self, values: dict) -> bool:
        """Whether this parameter matters given the other values (see ``when``)."""
        return all(values.get(name) in (allowed if isinstance(allowed, tuple) else (allowed,))
                   for name, allowed in (self.when or {}).items())


def resolve(method: str, declared: Sequence[Param], given: dict) -> dict:
    """Every declared parameter's value: ``given`` (checked and converted) or its default.

    An unknown name raises :class:`CondensationError` naming the valid ones.
    """
    names = [p.name for p in declared]
    unknown = sorted(set(given) - set(names))
    if unknown:
        guesses = [match for name in unknown for match in difflib.get_close_matches(name, names, n=1)]
        raise CondensationError(f"{method} has no parameter {', '.join(map(repr, unknown))}; "
                                f"its parameters are: {', '.join(names) or 'none'}"
                                f"{f'. Did you mean {guesses[0]!r}?' if len(unknown) == 1 and guesses else ''}")
    return {p.name: p.check(given[p.name], method) if p.name in given else p.default for p in declared}


def param(default: Any, help: str, *, label: str = "", choices: Optional[tuple] = None, min: Optional[float] = None,
          max: Optional[float] = None, objects: bool = False, when: Optional[dict] = None, form: bool = True,
          parse: Optional[Callable[[Any], Any]] = None, path: Optional[str] = None) -> Any:
    """A settings dataclass field that is also a declared parameter (its type comes from the annotation)."""
    spec = dict(help=help, label=label, choices=choices, min=min, max=max, objects=objects, when=when, form=form,
                parse=parse, path=path)
    return field(default=default, metadata={"param": spec})


@functools.cache
def declared(settings: type) -> tuple[Param, ...]:
    """The parameters a settings dataclass declares with :func:`param`, in field order.

    ``Optional[X]`` is a parameter of type ``X`` that may be ``None``; a union of several types
    (an int or a tuple) is its first type, and accepts the others as objects. A class attribute
    ``conditions`` (name → ``when``) makes inherited parameters conditional in a subclass.
    """
    hints = typing.get_type_hints(settings)
    conditions = getattr(settings, "conditions", {})
    params = []
    for f in fields(settings):
        if "param" not in f.metadata:
            continue
        spec = dict(f.metadata["param"])
        kind, optional, several = _kind(hints[f.name])
        spec["objects"] = spec["objects"] or several
        spec["when"] = conditions.get(f.name, spec["when"])
        default = None if f.default is MISSING else f.default
        params.append(Param(f.name, kind, default, optional=optional, annotation=hints[f.name], **spec))
    return tuple(params)


def _kind(annotation: Any) -> tuple[type, bool, bool]:
    """(type, may be None, accepts several types) of an annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        first = typing.get_origin(members[0]) or members[0]
        return first, optional, len(members) > 1
    return typing.get_origin(annotation) or annotation, False, False


def check_settings(settings: Any, method: str) -> None:
    """Every declared field of ``settings`` checked against its declaration (a :class:`CondensationError` if not)."""
    for p in declared(type(settings)):
        p.check(getattr(settings, p.name), method)


def takes(params: Sequence[Param], into: str, build: Callable[[dict], Any]) -> Callable[[Function], Function]:
    """Give a function the declared ``params`` as keyword-only arguments (in its signature, so
    ``help()`` and editors show them, and an unknown keyword is a ``TypeError`` as in Python), and
    hand the values given over as one argument ``into`` = ``build(given)``."""
    names = [p.name for p in params]

    def decorate(function: Function) -> Function:
        inner = inspect.signature(function)
        own = [p for p in inner.parameters.values() if p.name != into]
        extra = [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default,
                                   annotation=p.annotation or p.type) for p in params]
        variadic = [p for p in own if p.kind is inspect.Parameter.VAR_KEYWORD]
        public = inner.replace(parameters=[p for p in own if p not in variadic] + extra + variadic)

        @functools.wraps(function)
        def call(*args, **kwargs):
            given = public.bind(*args, **kwargs).arguments
            values = {name: given.pop(name) for name in names if name in given}
            rest = given.pop(variadic[0].name, {}) if variadic else {}
            return function(**given, **rest, **{into: build(values)})

        call.__signature__ = public
        return call

    return decorate
