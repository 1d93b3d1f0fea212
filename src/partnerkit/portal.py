"""The Portal: every use case of partnerkit, each one audited unit of work.

A use case re-reads what it decides on inside its unit of work (never trusting objects the
caller hands in), asks :mod:`partnerkit.roles` for the decision, writes, appends its audit
events and commits. A denied or failed attempt by a known actor is audited too, in a unit of
work of its own, after the attempt's own one was rolled back.

The use cases are written one feature to a module (``_portal_directory``, ``_portal_offers``,
``_portal_consent``, ``_portal_support``, over the shared ``_portal_core``); this class is
their sum, and the one name portal developers use.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from partnerkit._portal_consent import ConsentCases
from partnerkit._portal_core import utc_now
from partnerkit._portal_directory import DirectoryCases
from partnerkit._portal_offers import OfferCases
from partnerkit._portal_support import SupportCases
from partnerkit.errors import _plain, _pretends, _unpretended

__all__ = ["Portal", "utc_now"]


class Portal(DirectoryCases, OfferCases, ConsentCases, SupportCases):
    """The use cases of a partner portal over one store.

    Args:
        store: where everything is kept (``MemoryStore``, ``SQLiteStore``, ``PostgresStore``
            or your own that passes the contract suite).
        keyring: the keys that sign links; the Portal uses this very object, so
            ``rotate()``, ``activate()`` and ``remove()`` act on a running Portal. Without
            one, a new random ring of the Portal's own: fit for tests only, since its links
            die with the process and no other app server verifies them.
        catalog: the services partners may offer.
        base_url: the page links point to; the signed code goes into its ``code`` parameter.
        clock: returns the current time as an aware datetime (taken as UTC: one in another
            zone is converted); the real clock by default.
        password_hasher: hashes and checks temporary passwords; by default a
            ``PasswordHasher()`` (scrypt, n=2**15, r=8, p=1).
        conflict_retries: how many times a use case whose unit of work met a ``Conflict``
            is run again before the ``Conflict`` reaches the caller (0 to 100; 3 by
            default).
        temporary_password_lifetime: how long a reset's temporary password signs in
            (once), from the reset, as judged at sign-in (1 minute to 90 days; 7 days by
            default).

    Each of these may be replaced on a running Portal (``portal.keyring =
    Keyring.from_json(text)``); an assignment is checked as the constructor checks it.
    """


def _read_as_text(method: Callable[..., Any]) -> Callable[..., Any]:
    """*method*, given each argument as what it is.

    Ids, names, e-mails, prefixes, cursors and URLs are read by their text: a ``str``
    subclass's own methods (``__eq__``, ``__len__``, ``strip``, ``encode``, sqlite3's
    ``__conform__``, ...) never judge or choose what a use case validates, compares,
    records or stores. A ``timedelta`` of a subclass is read by its days, seconds and
    microseconds, so that its own comparisons never judge a bound. And an object whose
    ``__class__`` claims a class it is not (which ``isinstance`` believes) is read as an
    object of no class a use case takes: it is refused as any wrong value is, by a
    ``ValidationError`` naming the argument. The actor is the exception: only its id is
    read (by its type and text, like every id), so a proxy of a ``User`` acts as that
    user. Each check is by ``type()``, which a ``__class__`` property cannot fake.
    """

    # The actor is read for its id alone, and re-read from the store: it may be a proxy of
    # a User (a web framework's "current user"), whose __class__ says User.
    names = list(inspect.signature(method).parameters)[1:]
    actor_at = names.index("actor") if "actor" in names else -1

    @functools.wraps(method)
    def use_case(self: Portal, *args: object, **kwargs: object) -> Any:
        for value in (*args, *kwargs.values()):
            kind = type(value)
            if kind is not str and (issubclass(kind, _READ_PLAIN) or _pretends(value)):
                args = tuple([a if i == actor_at else _as_it_is(a) for i, a in enumerate(args)])
                kwargs = {n: v if n == "actor" else _as_it_is(v) for n, v in kwargs.items()}
                break
        return method(self, *args, **kwargs)

    use_case.__module__ = __name__
    use_case.__qualname__ = f"Portal.{method.__name__}"  # pickled by reference, as before
    return use_case


#: The classes whose subclasses' values an argument is read as: their own methods never run.
_READ_PLAIN = (str, timedelta)
_NO_TIME = timedelta(0)


def _as_it_is(value: object) -> object:
    kind = type(value)
    if kind is not timedelta and issubclass(kind, timedelta):
        return timedelta.__add__(_NO_TIME, cast(timedelta, value))
    return _plain(_unpretended(value))


#: The use cases that read their arguments by their text themselves, on the paths with
#: targets in SPEC section 6; and ``now``, which takes none.
_INLINE = ("decide", "redeem", "inspect_link", "find_customers", "find_customers_page", "now")
for _name, _method in inspect.getmembers(Portal, inspect.isfunction):
    if not _name.startswith("_") and _name not in _INLINE:
        setattr(Portal, _name, _read_as_text(_method))

del _name, _method
