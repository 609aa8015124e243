"""Custom search attributes the workflows set, so `temporal workflow list --query` finds work.

The dev server registers them at start (`--search-attribute NAME=Keyword`); a production cluster
registers them once with `temporal operator search-attribute create`.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

REQUEST_TEAM = SearchAttributeKey.for_keyword("RiskdeskTeam")
REQUEST_STATUS = SearchAttributeKey.for_keyword("RiskdeskStatus")
REQUEST_PRIORITY = SearchAttributeKey.for_keyword("RiskdeskPriority")

ALL_KEYWORDS = (REQUEST_TEAM, REQUEST_STATUS, REQUEST_PRIORITY)


def dev_server_flags() -> list[str]:
    """`--search-attribute` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL_KEYWORDS:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
