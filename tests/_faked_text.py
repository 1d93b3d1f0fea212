"""A hostile ``str`` subclass the tests of reading ids by their text share."""

from __future__ import annotations


class FakedStr(str):
    """Equal to everything, and says its class is ``str``: only ``type()`` sees through
    the claim, and a store or a use case must read only its text."""

    __slots__ = ()

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__
