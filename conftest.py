"""Run every example in the documentation as part of the test suite (Sybil).

* Every ```python block in ``docs/*.md`` and ``README.md`` runs; the blocks of one document
  share one namespace, in order, so a page reads (and runs) like one session. A block that
  starts with ``>>>`` is a doctest whose output is checked.
* Every doctest in the docstrings of ``src/partnerkit`` runs, in its module's namespace.

Doctests compare output with ``ELLIPSIS`` on, so generated ids can be written as ``...``.
"""

from __future__ import annotations

from doctest import ELLIPSIS

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
from sybil.parsers.rest import DocTestParser

_markdown = Sybil(
    parsers=[PythonCodeBlockParser(doctest_optionflags=ELLIPSIS), SkipParser()],
    patterns=["docs/*.md", "README.md"],
    name="docs",
)
_docstrings = Sybil(
    parsers=[DocTestParser(optionflags=ELLIPSIS)],
    path="src",
    patterns=["*.py"],
    name="docstrings",
)

pytest_collect_file = (_markdown + _docstrings).pytest()
