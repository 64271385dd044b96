"""docs/security.md carries the permission matrix; it must say what permissions.py does."""

from __future__ import annotations

from pathlib import Path

from demandly.auth.permissions import ROLE_PERMISSIONS, ROLE_RANK, Permission, can_grant
from demandly.tenancy.models import Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def documented_matrix() -> dict[str, set[str]]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Permission matrix")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    header, _separator, *body = rows
    assert header[0] == "permission"
    roles = header[1:]
    matrix: dict[str, set[str]] = {role: set() for role in roles}
    for permission, *marks in body:
        assert len(marks) == len(roles), f"row {permission} has {len(marks)} cells"
        for role, mark in zip(roles, marks, strict=True):
            assert mark in ("✓", "–"), f"bad mark {mark!r} for {permission}/{role}"  # noqa: RUF001
            if mark == "✓":
                matrix[role].add(permission)
    return matrix


def test_docs_matrix_equals_the_code() -> None:
    documented = documented_matrix()
    assert set(documented) == {role.value for role in Role}
    for role, permissions in ROLE_PERMISSIONS.items():
        assert documented[role.value] == {p.value for p in permissions}, role.value


def test_every_permission_is_documented() -> None:
    rows = set().union(*documented_matrix().values())
    assert rows == {p.value for p in Permission}


def test_nobody_grants_above_their_own_rank() -> None:
    assert set(ROLE_RANK) == set(Role)
    assert can_grant(Role.AGENCY_ADMIN, Role.CLIENT_ADMIN)
    assert can_grant(Role.CLIENT_ADMIN, Role.CLIENT_ADMIN)
    assert not can_grant(Role.AGENCY_ADMIN, Role.AGENCY_OWNER)
    assert not can_grant(Role.CLIENT_MEMBER, Role.CLIENT_ADMIN)
