"""Online feature lookup at inference: the features a request leaves out, from the online store.

With the stack's ``onlineFeatureLookup`` on, the endpoint's containers get
``MLOPS_ONLINE_FEATURE_GROUP`` (the stack's feature group) and their role may call
``sagemaker:BatchGetRecord`` and ``sagemaker:GetRecord`` on that group only (infra/endpoint.py).
A JSON record may then carry only the record identifier (the schema's ``entity_id``), or the
identifier and some features: the server fills every feature the record does not name from
the group's online store, one ``BatchGetRecord`` per request (at most 100 identifiers a call,
the API's limit, so a larger request makes several), asking for the schema's features only
(never the target the group also holds). A feature the request names keeps the request's
value. Looked-up values are text (``ValueAsString``) and are checked by the contract as a CSV
cell is: an absent one is a null, refused unless the feature is nullable.

Refusals are 400s naming the field: a record that needs a lookup but has no identifier
(``instances[0].customer_id: missing; ...``), and identifiers the online store holds no record
for (``customer_id: no record in the online store of <group> for 'C1', 'C2'``). A lookup that
fails in AWS (throttled past boto3's retries, no permission) is the server's 500, logged.

CSV requests carry every feature in order and are never looked up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

# What the endpoint's container environment names the feature group by (infra/endpoint.py).
FEATURE_GROUP_VARIABLE = "MLOPS_ONLINE_FEATURE_GROUP"
# BatchGetRecord: at most 100 record identifiers per feature group in one call (API reference).
BATCH_LIMIT = 100
# UnprocessedIdentifiers are asked for again, this many times in all, before the lookup fails.
ATTEMPTS = 3


class LookupFailed(RuntimeError):
    """The online store did not answer for every identifier (an AWS error, not the caller's)."""


class OnlineLookup:
    """Reads records of one feature group's online store, ``features`` only.

    ``client`` is a ``sagemaker-featurestore-runtime`` client, or a callable making one (called
    once per process: gunicorn forks its workers after the app is built, and a client's
    connection pool must not be shared across processes).
    """

    def __init__(self, feature_group: str, features: Iterable[str], client: Any | Callable[[], Any]):
        self.feature_group = feature_group
        self.features = list(features)
        self._client = client
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, features: Iterable[str]) -> OnlineLookup | None:
        """The lookup ``MLOPS_ONLINE_FEATURE_GROUP`` asks for, or None when it is unset."""
        group = os.environ.get(FEATURE_GROUP_VARIABLE, "").strip()
        if not group:
            return None

        def client() -> Any:
            import boto3

            return boto3.client("sagemaker-featurestore-runtime")

        return cls(group, features, client)

    def client(self) -> Any:
        if not callable(self._client) or hasattr(self._client, "batch_get_record"):
            return self._client
        pid = os.getpid()
        with self._lock:
            if pid not in self._clients:
                self._clients[pid] = self._client()
            return self._clients[pid]

    def __call__(self, identifiers: list[str]) -> dict[str, dict[str, str]]:
        """Feature values (as text) by identifier, for the identifiers the online store holds."""
        wanted = list(dict.fromkeys(identifiers))
        found: dict[str, dict[str, str]] = {}
        for first in range(0, len(wanted), BATCH_LIMIT):
            pending = wanted[first : first + BATCH_LIMIT]
            for _ in range(ATTEMPTS):
                answer = self.client().batch_get_record(
                    Identifiers=[
                        {
                            "FeatureGroupName": self.feature_group,
                            "RecordIdentifiersValueAsString": pending,
                            "FeatureNames": self.features,
                        }
                    ]
                )
                if answer.get("Errors"):
                    error = answer["Errors"][0]
                    raise LookupFailed(
                        f"BatchGetRecord on {self.feature_group}: {error.get('ErrorCode')}: "
                        f"{error.get('ErrorMessage')}"
                    )
                for record in answer.get("Records", []):
                    values = {i["FeatureName"]: i.get("ValueAsString") for i in record.get("Record", [])}
                    found[record["RecordIdentifierValueAsString"]] = values
                pending = [
                    identifier
                    for unprocessed in answer.get("UnprocessedIdentifiers", [])
                    for identifier in unprocessed.get("RecordIdentifiersValueAsString", [])
                ]
                if not pending:
                    break
            else:
                raise LookupFailed(
                    f"BatchGetRecord on {self.feature_group}: {len(pending)} identifiers still "
                    f"unprocessed after {ATTEMPTS} attempts"
                )
        return found
