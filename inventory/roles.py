"""The five roles, held as Django groups."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "Model owner"
    RISK = "Risk committee"
    COMPLIANCE = "Compliance officer"
    AUDITOR = "Auditor"
    ADMIN = "Administrator"


ROLE_SLUGS = {
    Role.OWNER: "owner",
    Role.RISK: "risk",
    Role.COMPLIANCE: "compliance",
    Role.AUDITOR: "auditor",
    Role.ADMIN: "admin",
}

# Roles that read every team's objects. Owners read only their teams' and their own.
READ_ALL_ROLES = frozenset({Role.RISK, Role.COMPLIANCE, Role.AUDITOR, Role.ADMIN})
