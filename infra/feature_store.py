"""The feature store: one SageMaker feature group per data contract, online and offline.

The feature definitions are derived from the schema file, never restated: the record
identifier and event time as strings, each feature by its type, and the label. The offline
store writes Parquet under ``s3://<bucket>/feature-store/`` with the stack key, and Feature
Store creates its Glue table in a database this component owns, under names it chooses, so
Athena queries and the training pipeline know where to read without looking anything up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifact_store import (
    FEATURE_STORE_PREFIX,
    key_use_statement,
)
from infra.base import child_opts, sagemaker_trust, stack_boundary
from model_code.contract.schema import Schema

# Ingestion adds this column (the time it read the record, ISO-8601) when the schema names no
# event time: Feature Store requires one to order the versions of a record.
DEFAULT_EVENT_TIME = "event_time"
# Glue catalog of the account; the only catalog Feature Store writes tables to.
GLUE_CATALOG = "AwsDataCatalog"
# Feature Store's own offline-store columns: a feature may not use these names.
RESERVED_FEATURE_NAMES = ("is_deleted", "write_time", "api_invocation_time")
_FEATURE_NAME = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")
_FEATURE_TYPES = {"integral": "Integral", "fractional": "Fractional", "string": "String"}


@dataclass(frozen=True)
class FeatureStoreArgs:
    """What the feature group needs from the stack.

    schema: the parsed data contract (``model_code.contract.schema.load``).
    bucket_name, bucket_arn: the artifact bucket; the offline store lives under ``feature-store/``.
    kms_key_arn: the stack key; it encrypts the online store and the offline store's objects.
    tags: the standard tags (project, stack, owner).
    online: keep an online store for low-latency reads at inference (True). The offline store
        (training data) always exists.
    feature_group_name: the feature group's AWS name (default: the schema's name). Give each
        stack its own, e.g. ``<schema>-<stack>``, when stacks share an account.
    """

    schema: Schema
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    online: bool = True
    feature_group_name: str | None = None


# -- pure functions ---------------------------------------------------------------------------


def event_time_feature(schema: Schema) -> str:
    """The event time column: the schema's, or the one ingestion adds (``DEFAULT_EVENT_TIME``)."""
    return schema.event_time or DEFAULT_EVENT_TIME


def target_feature_type(schema: Schema) -> str:
    """The label's Feature Store type, from the type of its positive class.

    An integer positive class (1) means integer labels; a float one (1.0) fractional labels,
    since Feature Store rejects "1.0" in an Integral feature; anything else is text.
    """
    positive = schema.target.positive
    if isinstance(positive, bool) or not isinstance(positive, (int, float)):
        return "String"
    return "Integral" if isinstance(positive, int) else "Fractional"


def feature_definitions(schema: Schema) -> list[dict[str, str]]:
    """The feature group's columns in schema order: id, event time, features, label.

    Raises ValueError naming a column Feature Store would refuse (a reserved name, or one that
    breaks its naming rule), so a bad contract fails at preview, not halfway through `up`.
    """
    definitions = [
        {"feature_name": schema.entity_id, "feature_type": "String"},
        # Strings in ISO-8601, which Feature Store accepts for event times and Athena can parse.
        {"feature_name": event_time_feature(schema), "feature_type": "String"},
        *({"feature_name": f.name, "feature_type": _FEATURE_TYPES[f.type]} for f in schema.features),
        {"feature_name": schema.target.column, "feature_type": target_feature_type(schema)},
    ]
    names = [d["feature_name"] for d in definitions]
    for name in names:
        if name.lower() in RESERVED_FEATURE_NAMES:
            raise ValueError(f"{schema.name}: column {name!r} is reserved by SageMaker Feature Store")
        if not _FEATURE_NAME.match(name):
            raise ValueError(
                f"{schema.name}: column {name!r} is not a valid feature name "
                "(letters and digits, '-' or '_' between them, at most 64 characters)"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{schema.name}: the event time column {names[1]!r} is already a column")
    return definitions


def glue_names(feature_group_name: str) -> tuple[str, str]:
    """(database, table) of the offline store's Glue table: lowercase, underscores (Athena's rules)."""
    base = feature_group_name.lower().replace("-", "_")
    return f"{base}_features", f"{base}_offline"


def feature_group_arn(feature_group_name: str, region: str, account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sagemaker:{region}:{account_id}:feature-group/{feature_group_name.lower()}"


def ingestion_role_policy(
    *,
    bucket_arn: str,
    key_arn: str,
    feature_group_name: str,
    region: str,
    account_id: str,
    partition: str = "aws",
) -> dict[str, Any]:
    """The feature group's role: what Feature Store itself does with it, writing the offline store.

    Feature Store writes the offline store's Parquet files under the bucket's ``feature-store/``
    prefix, encrypted with the stack key, and creates and updates this group's Glue table; it
    reads nothing back, and records are put by the ingestion pipeline's own role, so the role
    holds no read, list or record permission. ``s3:GetBucketAcl`` and ``s3:PutObjectAcl`` are
    what Feature Store checks before writing the offline store (AWS's
    AmazonSageMakerFeatureStoreAccess policy; with ACLs disabled on the bucket they change nothing).
    """
    database, table = glue_names(feature_group_name)
    glue = f"arn:{partition}:glue:{region}:{account_id}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteTheOfflineStore",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": f"{bucket_arn}/{FEATURE_STORE_PREFIX}*",
            },
            {
                "Sid": "OfflineStoreAclChecks",
                "Effect": "Allow",
                "Action": ["s3:GetBucketAcl", "s3:PutObjectAcl"],
                "Resource": [bucket_arn, f"{bucket_arn}/{FEATURE_STORE_PREFIX}*"],
            },
            key_use_statement(key_arn),
            {
                "Sid": "OfflineStoreGlueTable",
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                ],
                "Resource": [
                    f"{glue}:catalog",
                    f"{glue}:database/{database}",
                    f"{glue}:table/{database}/{table}",
                ],
            },
        ],
    }


# -- the component ---------------------------------------------------------------------------


class FeatureStore(pulumi.ComponentResource):
    """One feature group for the schema, its Glue database and the role Feature Store uses.

    Public attributes: ``feature_group``, ``feature_group_name`` (a plain string),
    ``feature_group_arn``, ``offline_store_uri``, ``glue_database``, ``glue_table`` (plain
    strings) and ``role_arn``.
    """

    def __init__(self, name: str, args: FeatureStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:feature_store:FeatureStore", name, None, opts)
        self._opts = child_opts(self, opts)
        self._name = name
        self._args = args
        self.feature_group_name: str = args.feature_group_name or args.schema.name
        self.glue_database, self.glue_table = glue_names(self.feature_group_name)
        definitions = feature_definitions(args.schema)

        role, role_policy = self._create_role()
        database = aws.glue.CatalogDatabase(
            f"{name}-glue-database",
            name=self.glue_database,
            description=f"Offline store of the {self.feature_group_name} feature group",
            tags=args.tags,
            opts=self._opts,
        )
        self.offline_store_uri: pulumi.Output[str] = pulumi.Output.concat(
            "s3://", args.bucket_name, "/", FEATURE_STORE_PREFIX
        )
        self.feature_group = self._create_feature_group(definitions, role, [role_policy, database])

        self.feature_group_arn: pulumi.Output[str] = self.feature_group.arn
        self.role_arn: pulumi.Output[str] = role.arn
        self.register_outputs(
            {
                "feature_group_name": self.feature_group_name,
                "feature_group_arn": self.feature_group_arn,
                "offline_store_uri": self.offline_store_uri,
                "role_arn": self.role_arn,
            }
        )

    def _create_role(self) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        args = self._args
        role = aws.iam.Role(
            f"{self._name}-role",
            name=f"{self.feature_group_name}-feature-store"[:64],
            description=f"Feature Store and ingestion for the {self.feature_group_name} feature group",
            assume_role_policy=sagemaker_trust(),
            permissions_boundary=stack_boundary(),
            tags=args.tags,
            opts=self._opts,
        )
        identity = aws.get_caller_identity_output()
        region = aws.get_region_output()
        partition = aws.get_partition_output()
        policy = pulumi.Output.all(
            args.bucket_arn, args.kms_key_arn, region.region, identity.account_id, partition.partition
        ).apply(
            lambda a: json.dumps(
                ingestion_role_policy(
                    bucket_arn=a[0],
                    key_arn=a[1],
                    feature_group_name=self.feature_group_name,
                    region=a[2],
                    account_id=a[3],
                    partition=a[4],
                )
            )
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-role-policy",
            role=role.id,
            policy=policy,
            opts=self._opts,
        )
        return role, role_policy

    def _create_feature_group(
        self, definitions: list[dict[str, str]], role: aws.iam.Role, depends_on: list[pulumi.Resource]
    ) -> aws.sagemaker.FeatureGroup:
        args = self._args
        online: dict[str, Any] = {"enable_online_store": args.online}
        if args.online:
            online["security_config"] = {"kms_key_id": args.kms_key_arn}
        return aws.sagemaker.FeatureGroup(
            f"{self._name}-feature-group",
            feature_group_name=self.feature_group_name,
            description=f"Features of the {args.schema.name} data contract",
            record_identifier_feature_name=args.schema.entity_id,
            event_time_feature_name=event_time_feature(args.schema),
            feature_definitions=definitions,
            online_store_config=online,
            offline_store_config={
                "s3_storage_config": {"s3_uri": self.offline_store_uri, "kms_key_id": args.kms_key_arn},
                # False: Feature Store creates the Glue table itself, under the names given here,
                # in the database above (AWS: "If set to False and DataCatalogConfig is provided,
                # Feature Store creates the table using the specified names").
                "disable_glue_table_creation": False,
                "data_catalog_config": {
                    "catalog": GLUE_CATALOG,
                    "database": self.glue_database,
                    "table_name": self.glue_table,
                },
            },
            role_arn=role.arn,
            tags=args.tags,
            # CreateFeatureGroup checks the role can write the offline store: attach its policy first.
            opts=pulumi.ResourceOptions.merge(self._opts, pulumi.ResourceOptions(depends_on=depends_on)),
        )
