"""The tables of docs/roles.md say what the policy in partnerkit.roles decides, cell by cell.

The tables are written by hand for portal developers; these tests keep them true: change a
rule without the page (or the page without the rule) and a cell disagrees.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from partnerkit import AdminRole, PartnerAccess, Permission, User
from partnerkit.roles import decide

ROLES_PAGE = Path(__file__).resolve().parents[1] / "docs" / "roles.md"
COMPANY = "cmp_docs"
ALLOWED, DENIED = "✓", "—"


def table(name: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and body rows of the table marked *name* in docs/roles.md."""
    text = ROLES_PAGE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name}: start -->\n(.*?)<!-- {name}: end -->", text, re.S)
    assert match is not None, f"docs/roles.md has no table marked {name!r}"
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in match.group(1).strip().splitlines()
    ]
    header, _separator, *body = rows
    assert body, f"table {name!r} is empty"
    return header, body


def name_in(cell: str) -> str:
    """The identifier in backticks in *cell* (``"`MANAGE_USERS` (targeted)"`` -> MANAGE_USERS)."""
    found = re.search(r"`([A-Z_]+)`", cell)
    assert found is not None, f"no identifier in {cell!r}"
    return found.group(1)


def role_of(cell: str) -> AdminRole | None:
    """The admin role a row or column header names; ``None`` for "no admin role"."""
    return None if cell == "no admin role" else AdminRole[name_in(cell)]


def user(name: str, role: AdminRole | None, access: PartnerAccess | None = None) -> User:
    return User(
        id=f"usr_{name}",
        company_id=COMPANY,
        email=f"{name}@docs.example",
        display_name=name,
        admin_role=role,
        partner_access=access,
    )


def cells(name: str) -> list[tuple[str, str, str]]:
    """Every (row header, column header, mark) of the table *name*."""
    header, body = table(name)
    out = []
    for row in body:
        assert len(row) == len(header), f"row {row[0]!r} of {name!r} has the wrong width"
        out.extend((row[0], column, mark) for column, mark in zip(header[1:], row[1:], strict=True))
    for _, _, mark in out:
        assert mark in (ALLOWED, DENIED)
    return out


def test_permission_matrix_lists_every_own_company_permission_and_every_role() -> None:
    """The own-company matrix has a row per non-partner permission and a column per role."""
    header, body = table("permission-matrix")
    listed = {Permission[name_in(row[0])] for row in body}
    partner_side = {Permission[name_in(row[0])] for row in table("partner-matrix")[1]}
    assert listed | partner_side == set(Permission)
    assert not listed & partner_side
    assert {role_of(cell) for cell in header[1:]} == {None, *AdminRole}


@pytest.mark.parametrize(("row", "column", "mark"), cells("permission-matrix"))
def test_permission_matrix_cell_agrees_with_decide(row: str, column: str, mark: str) -> None:
    """A user with the column's role holds the row's permission in its own company exactly
    when the page shows a tick."""
    actor = user("actor", role_of(column))
    decision = decide(actor, Permission[name_in(row)], COMPANY)
    assert bool(decision) is (mark == ALLOWED), decision


@pytest.mark.parametrize(("row", "column", "mark"), cells("partner-matrix"))
def test_partner_matrix_cell_agrees_with_decide(row: str, column: str, mark: str) -> None:
    """Partner-side permissions follow partner access alone, in the user's own partner."""
    access = None if column == "no partner access" else PartnerAccess[name_in(column)]
    for role in (None, AdminRole.GLOBAL_ADMIN):
        actor = user("actor", role, access)
        decision = decide(actor, Permission[name_in(row)], COMPANY, company_is_partner=True)
        assert bool(decision) is (mark == ALLOWED), (role, decision)


def targets_of(column: str) -> list[User]:
    """The users a target column stands for ("partner user": several, whatever their role)."""
    if column == "partner user":
        return [
            user("target", None, PartnerAccess.LIMITED),
            user("target", AdminRole.PASSWORD_ADMIN, PartnerAccess.LIMITED),
            user("target", AdminRole.BILLING_ADMIN, PartnerAccess.FULL),
        ]
    return [user("target", role_of(column))]


@pytest.mark.parametrize("table_name", ["reset-matrix", "manage-matrix"])
def test_target_matrices_cover_every_actor_and_target(table_name: str) -> None:
    """Each target matrix has a row per actor role and a column per target kind."""
    header, body = table(table_name)
    assert {role_of(row[0]) for row in body} == {None, *AdminRole}
    assert [*map(role_of, header[1:-1])] == [None, *AdminRole]
    assert header[-1] == "partner user"


@pytest.mark.parametrize(
    ("permission", "row", "column", "mark"),
    [(Permission.RESET_PASSWORD, *cell) for cell in cells("reset-matrix")]
    + [(Permission.MANAGE_USERS, *cell) for cell in cells("manage-matrix")],
)
def test_target_matrix_cell_agrees_with_decide(
    permission: Permission, row: str, column: str, mark: str
) -> None:
    """An actor with the row's role may reset the password of (or manage) a user of the
    column's kind in the same company exactly when the page shows a tick."""
    # The matrix's ticks for partner users are those of an actor holding FULL access (a reset
    # takes at least the target's access; test_roles_table checks every access).
    actor = user("actor", role_of(row), PartnerAccess.FULL if column == "partner user" else None)
    for target in targets_of(column):
        decision = decide(actor, permission, COMPANY, target=target, company_is_partner=True)
        assert bool(decision) is (mark == ALLOWED), (target, decision)
