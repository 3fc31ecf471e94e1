"""Lifecycle policies (DatabaseService.SetLifecyclePolicy and friends), as the SDK's own frozen
dataclass rather than the generated message (the same shape as Rust's
`dbforge::LifecyclePolicy` and TypeScript's `src/policy.ts`).

A policy applies to every database its selector matches (`name_pattern`, `labels`, or both),
existing and future: prune after `idle_ttl` without a data-plane call, prune at `max_age`, and
at most `max_databases_per_key` selected databases per (non-admin) key. A database's own TTLs
and the policies combine so that the stricter wins. Setting and deleting need an admin key.

```python
import datetime as dt
from dbforge import LifecyclePolicy

admin.set_lifecycle_policy(
    LifecyclePolicy("ci", name_pattern="ci-*", max_age=dt.timedelta(days=1), idle_ttl=dt.timedelta(hours=1))
)
```
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from dbforge.admin import duration
from dbforge.errors import ProtocolError
from dbforge.types import timedelta_pb, timestamp
from dbforge.v1 import database_pb2

__all__ = ["LifecyclePolicy"]


@dataclass(frozen=True)
class LifecyclePolicy:
    """A lifecycle policy: what `set_lifecycle_policy` takes and the policy calls answer.

    Attributes:
        name: its name: 1 to 63 characters `a-z 0-9 _ -`, starting with a letter.
        name_pattern: database names it selects, `*` standing for any characters; empty: any.
        labels: labels a selected database carries (all of them). At least one of
            `name_pattern` and `labels` must be set; with both, both must hold.
        idle_ttl: prune a selected database after this long without a data-plane call.
        max_age: prune a selected database this long after its creation.
        max_databases_per_key: at most this many selected databases per (non-admin) key;
            0: no limit. Over it, creates and forks fail with ResourceExhausted.
        max_bytes: a size quota in bytes for every selected database; None: none.
        updated_at, updated_by: set by the server (when, and by which key, it was last set),
            ignored when sent.
    """

    name: str
    name_pattern: str = ""
    labels: Dict[str, str] = field(default_factory=dict)
    idle_ttl: Optional[_dt.timedelta] = None
    max_age: Optional[_dt.timedelta] = None
    max_databases_per_key: int = 0
    max_bytes: Optional[int] = None
    updated_at: Optional[_dt.datetime] = None
    updated_by: str = ""

    @classmethod
    def from_pb(cls, p: database_pb2.LifecyclePolicy) -> LifecyclePolicy:
        return cls(
            name=p.name,
            name_pattern=p.name_pattern,
            labels=dict(p.labels),
            idle_ttl=duration(p.idle_ttl) if p.HasField("idle_ttl") else None,
            max_age=duration(p.max_age) if p.HasField("max_age") else None,
            max_databases_per_key=p.max_databases_per_key,
            max_bytes=p.max_bytes or None,
            updated_at=timestamp(p.updated_at) if p.HasField("updated_at") else None,
            updated_by=p.updated_by,
        )

    def to_pb(self) -> database_pb2.LifecyclePolicy:
        """The policy as SetLifecyclePolicy takes it (without the fields the server sets)."""
        p = database_pb2.LifecyclePolicy(
            name=self.name,
            name_pattern=self.name_pattern,
            labels=dict(self.labels),
            max_databases_per_key=self.max_databases_per_key,
            max_bytes=self.max_bytes or 0,
        )
        if self.idle_ttl is not None:
            p.idle_ttl.CopyFrom(timedelta_pb(self.idle_ttl))
        if self.max_age is not None:
            p.max_age.CopyFrom(timedelta_pb(self.max_age))
        return p


def policy_set(resp: database_pb2.SetLifecyclePolicyResponse) -> Tuple[LifecyclePolicy, bool]:
    """SetLifecyclePolicy's answer: the policy as stored and whether it is new."""
    if not resp.HasField("policy"):
        raise ProtocolError("the response carries no policy")
    return LifecyclePolicy.from_pb(resp.policy), resp.created
