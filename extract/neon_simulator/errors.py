"""Error answers: :class:`ApiError` (an HTTP status with a ``GeneralError`` body) and the exact
messages Neon answers in the cases clients must recognise.
"""

from __future__ import annotations

ORG_KEY_FORBIDDEN = "not allowed for organization API keys"
ORG_ID_REQUIRED = "org_id is required, you can find it on your organization settings page"
CONSUMPTION_PLAN_REQUIRED = (
    "Not available for this account. Project consumption history requires a Launch, Scale, Agent, "
    "Business, or Enterprise plan."
)
BRANCH_CONSUMPTION_PLAN_REQUIRED = (
    "Not available for this account. Branch consumption history requires a paid usage-based "
    "Launch, Scale, Agent, or Enterprise plan."
)

# Access review endpoints (access.py): who may read API keys and VPC endpoints.
ADMIN_REQUIRED = "only organization admins can do this"
VPC_PLAN_REQUIRED = "Private networking is available on the Scale and Business plans."
SPENDING_LIMIT_PLAN_REQUIRED = "Spending limits are available on the Launch and Scale plans only."


class ApiError(Exception):
    """An error answer: HTTP ``status`` with a ``GeneralError`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
