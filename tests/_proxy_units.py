"""A real store seen through a wrapper: the tests of the optional unit-of-work capabilities
(``search_customers``, ``get_each``) hide, add or watch one method on real units of work."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from partnerkit.ports import Store


class ProxyUnit:
    """A real unit of work, passed through; subclasses change what they need."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __enter__(self) -> ProxyUnit:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ProxyStore:
    """A store whose units of work are made by *wrap* around *inner*'s."""

    def __init__(self, inner: Store, wrap: Callable[[Any], ProxyUnit]) -> None:
        self.inner = inner
        self._wrap = wrap

    def unit_of_work(self, *, write: bool = True) -> Any:
        return self._wrap(self.inner.unit_of_work(write=write))

    def close(self) -> None:
        self.inner.close()
