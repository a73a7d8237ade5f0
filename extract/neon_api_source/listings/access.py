"""The access review's listings: who can reach the estate."""

from __future__ import annotations

from .base import ACCESS, NEXT, ORG, PROJECT, WITH_FULL_READING, Listing

# ------------------------------------------------------------------- who can reach the estate
# Members, organization API keys and VPC endpoints are read per organization on every run (a few
# requests); project shares and VPC restrictions per project, with the project's full reading
# (incremental.py); per-project permissions on every run (Neon signals no change to them).

ORGANIZATION_MEMBERS = Listing(
    table="organization_members",
    reader=ACCESS,
    route="/organizations/{org_id}/members",
    label="members",
    envelope="members",
    parent=ORG,
    paginator=NEXT,
    page_limit=500,
    primary_key=("id",),
    required=("id", "user_id", "org_id", "role"),
    spec_schema="Member",
    emails="email",
    columns={
        "id": "text",
        "user_id": "text",
        "org_id": "text",
        "role": "text",
        "joined_at": "timestamp",
    },
    nested={
        "user": (
            "MemberUserInfo",
            {
                "email": "text",
                "has_mfa": "bool",
                "deactivated_at": "timestamp",
            },
        )
    },
)
# `created_by` (the creator's id, name and avatar) lands as `created_by_user_id` only: the id
# joins the members, whose email names the creator; a second copy of a person's name would be
# personal data the review does not need. A key's token is never a column (the list has none).
ORGANIZATION_API_KEYS = Listing(
    table="organization_api_keys",
    reader=ACCESS,
    noun="organization API keys",
    route="/organizations/{org_id}/api_keys",
    label="api keys",
    envelope=None,
    parent=ORG,
    primary_key=("id",),
    required=("id", "org_id", "name"),
    spec_schema="OrgApiKeysListResponseItem",
    columns={
        "id": "bigint",
        "name": "text",
        "created_at": "timestamp",
        "last_used_at": "timestamp",
        "last_used_from_addr": "text",
        "project_id": "text",
    },
    added={"org_id": "text", "created_by_user_id": "text"},
)
ORGANIZATION_VPC_ENDPOINTS = Listing(
    table="organization_vpc_endpoints",
    noun="organization VPC endpoints",
    route="/organizations/{org_id}/vpc/vpc_endpoints",
    label="vpc",
    envelope="endpoints",
    parent=ORG,
    primary_key=("org_id", "vpc_endpoint_id"),
    required=("org_id", "vpc_endpoint_id"),
    spec_schema="VPCEndpointWithRegion",
    columns={
        "vpc_endpoint_id": "text",
        "label": "text",
        "region_id": "text",
    },
    added={"org_id": "text"},
)
PROJECT_PERMISSIONS = Listing(
    table="project_permissions",
    reader=ACCESS,
    noun="project shares",
    route="/projects/{project_id}/permissions",
    label="shares",
    envelope="project_permissions",
    parent=PROJECT,
    primary_key=("project_id", "id"),
    required=("id", "project_id"),
    carried=WITH_FULL_READING,
    confirmed=True,
    spec_schema="ProjectPermission",
    emails="granted_to_email",
    columns={
        "id": "text",
        "granted_to_email": "text",
        "granted_at": "timestamp",
        "revoked_at": "timestamp",
    },
    added={"project_id": "text"},
)
PROJECT_VPC_ENDPOINTS = Listing(
    table="project_vpc_endpoints",
    reader=ACCESS,
    noun="project VPC restrictions",
    route="/projects/{project_id}/vpc_endpoints",
    label="vpc limits",
    envelope="endpoints",
    parent=PROJECT,
    primary_key=("project_id", "vpc_endpoint_id"),
    required=("project_id", "vpc_endpoint_id"),
    carried=WITH_FULL_READING,
    confirmed=True,
    spec_schema="VPCEndpoint",
    columns={
        "vpc_endpoint_id": "text",
        "label": "text",
    },
    added={"project_id": "text"},
)
# Per-project permissions (declared in the live spec), 500 a page, for every organization's
# project (a personal project has none: no request). The member's display name is not loaded
# (the email names them, as for organization members).
PROJECT_MEMBERS = Listing(
    table="project_members",
    org_projects_only=True,
    route="/projects/{project_id}/members",
    label="proj members",
    envelope="project_members",
    parent=PROJECT,
    paginator=NEXT,
    page_limit=500,
    primary_key=("project_id", "member_id"),
    required=("project_id", "member_id", "user_id", "org_role"),
    confirmed=True,
    spec_schema="ProjectMember",
    emails="email",
    columns={
        "member_id": "text",
        "user_id": "text",
        "email": "text",
        "org_role": "text",
        "project_role": "text",
        "org_default_project_permission": "text",
        "explicit_project_permission": "text",
        "effective_project_permission": "text",
        "grant_source": "text",
    },
    added={"project_id": "text"},
)

# For each access listing and organization or project: read or refused, when, and why.
COVERAGE_TABLE = "access_coverage"
COVERAGE_COLUMNS = {
    "listing": "text",
    "scope_id": "text",
    "org_id": "text",
    "project_id": "text",
    "is_visible": "bool",
    "status": "bigint",
    "detail": "text",
    "read_reason": "text",
    "confirmed_at": "timestamp",
}
COVERAGE_REQUIRED = ("listing", "scope_id", "is_visible", "confirmed_at")

# The listings of this module, in the order the source reads and loads them.
ROWS = (
    ORGANIZATION_MEMBERS,
    ORGANIZATION_API_KEYS,
    ORGANIZATION_VPC_ENDPOINTS,
    PROJECT_PERMISSIONS,
    PROJECT_VPC_ENDPOINTS,
    PROJECT_MEMBERS,
)
