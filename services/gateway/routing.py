"""Which service owns which public path: one table, matched on the first segment after `/api/v1/`.

Matching whole segments (a dict lookup, not a string prefix test) means `/api/v1/requestsX` is
nobody's path and gets a 404, and the lookup costs the same however long the table grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.common.settings import ServiceName

API_PREFIX = "/api/v1/"

ROUTES: Mapping[str, ServiceName] = MappingProxyType(
    {
        # intake: partner requests and initiatives
        "requests": "intake",
        "initiatives": "intake",
        "request-types": "intake",
        "request-queues": "intake",
        # escalation: escalations, their action items, systemic gaps, the person directory
        "escalations": "escalation",
        "action-items": "escalation",
        "gaps": "escalation",
        "people": "escalation",
        # sop: SOPs, rollouts, parity, detection rules, the MO repository
        "sops": "sop",
        "rollouts": "sop",
        "parity": "sop",
        "orgs": "sop",
        "rules": "sop",
        "mos": "sop",
    }
)

# `/api/v1/stats/<area>`: each service answers the stats of its own area (second segment).
STATS_ROUTES: Mapping[str, ServiceName] = MappingProxyType(
    {"intake": "intake", "escalations": "escalation", "sops": "sop"}
)

UPSTREAM_SERVICES: tuple[ServiceName, ...] = ("intake", "escalation", "sop")


def resolve(path: str) -> ServiceName | None:
    """The service that serves `path` (`/api/v1/<segment>[/...]`), or None if no service does."""
    if not path.startswith(API_PREFIX):
        return None
    segment, _, rest = path[len(API_PREFIX) :].partition("/")
    if segment == "stats":
        return STATS_ROUTES.get(rest.partition("/")[0])
    return ROUTES.get(segment)
