"""SageMaker: feature group, model registry, pipelines, MLflow, and the model endpoint.

ForceNew follows terraform-provider-aws's schemas: a model and an endpoint configuration are
replaced by any change; an endpoint switching configuration gets ``UpdateEndpoint`` with its
deployment config; a pipeline gets ``UpdatePipeline``; a feature group is replaced by any
change but its online store's TTL and throughput.
"""

from __future__ import annotations

import uuid

import requests

from localcloud.translations import references
from localcloud.translations.base import Translation, register, retag, tag_list


def _tags(inputs):
    return tag_list(inputs.get("tags")) or None


def _clean(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}


def _retag(call, arn: str, olds, news) -> None:
    """SageMaker's tags change in place on every resource type (AddTags / DeleteTags)."""
    retag(
        olds,
        news,
        lambda tags: call("sagemaker", "AddTags", ResourceArn=arn, Tags=tag_list(tags)),
        lambda keys: call("sagemaker", "DeleteTags", ResourceArn=arn, TagKeys=keys),
    )


class _TagsInPlace(Translation):
    """A SageMaker type whose every input but its tags forces a new resource."""

    def _arn(self, call, id_: str) -> str:
        raise NotImplementedError

    def update(self, call, id_, olds, news, changed):
        if changed - {"tags"}:
            return super().update(call, id_, olds, news, changed)
        arn = self._arn(call, id_)
        _retag(call, arn, olds, news)
        return {"arn": arn}

    def read(self, call, id_, inputs):
        operation, params = self._describe(id_)
        return {} if call.exists("sagemaker", operation, **params) else None

    def _describe(self, id_: str) -> tuple:
        raise NotImplementedError


@register
class FeatureGroup(_TagsInPlace):
    type = "aws:sagemaker/featureGroup:FeatureGroup"
    force_new = frozenset(
        {
            "featureGroupName",
            "description",
            "eventTimeFeatureName",
            "featureDefinitions",
            "offlineStoreConfig",
            "onlineStoreConfig",
            "recordIdentifierFeatureName",
            "roleArn",
        }
    )

    def create(self, call, inputs):
        references.role(call, inputs.get("roleArn"), "roleArn")
        offline = inputs.get("offlineStoreConfig")
        online = inputs.get("onlineStoreConfig")
        references.kms_key(
            call,
            ((offline or {}).get("s3StorageConfig") or {}).get("kmsKeyId"),
            "offlineStoreConfig.s3StorageConfig.kmsKeyId",
        )
        references.kms_key(
            call,
            ((online or {}).get("securityConfig") or {}).get("kmsKeyId"),
            "onlineStoreConfig.securityConfig.kmsKeyId",
        )
        name = inputs["featureGroupName"]
        call(
            "sagemaker",
            "CreateFeatureGroup",
            **_clean(
                {
                    "FeatureGroupName": name,
                    "RecordIdentifierFeatureName": inputs["recordIdentifierFeatureName"],
                    "EventTimeFeatureName": inputs["eventTimeFeatureName"],
                    "FeatureDefinitions": inputs["featureDefinitions"],
                    "OnlineStoreConfig": online,
                    "OfflineStoreConfig": offline,
                    "RoleArn": inputs.get("roleArn"),
                    "Description": inputs.get("description"),
                    "Tags": _tags(inputs),
                }
            ),
        )
        return name, {
            "arn": call("sagemaker", "DescribeFeatureGroup", FeatureGroupName=name)["FeatureGroupArn"]
        }

    def _arn(self, call, id_):
        return call("sagemaker", "DescribeFeatureGroup", FeatureGroupName=id_)["FeatureGroupArn"]

    def _describe(self, id_):
        return ("DescribeFeatureGroup", {"FeatureGroupName": id_})

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeleteFeatureGroup", FeatureGroupName=id_)


@register
class ModelPackageGroup(_TagsInPlace):
    type = "aws:sagemaker/modelPackageGroup:ModelPackageGroup"
    force_new = frozenset({"modelPackageGroupName", "modelPackageGroupDescription"})

    def create(self, call, inputs):
        name = inputs["modelPackageGroupName"]
        call(
            "sagemaker",
            "CreateModelPackageGroup",
            **_clean(
                {
                    "ModelPackageGroupName": name,
                    "ModelPackageGroupDescription": inputs.get("modelPackageGroupDescription"),
                    "Tags": _tags(inputs),
                }
            ),
        )
        found = call("sagemaker", "DescribeModelPackageGroup", ModelPackageGroupName=name)
        return name, {"arn": found["ModelPackageGroupArn"]}

    def _arn(self, call, id_):
        found = call("sagemaker", "DescribeModelPackageGroup", ModelPackageGroupName=id_)
        return found["ModelPackageGroupArn"]

    def _describe(self, id_):
        return ("DescribeModelPackageGroup", {"ModelPackageGroupName": id_})

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeleteModelPackageGroup", ModelPackageGroupName=id_)


@register
class Pipeline(Translation):
    type = "aws:sagemaker/pipeline:Pipeline"
    force_new = frozenset({"pipelineName"})

    def create(self, call, inputs):
        references.role(call, inputs.get("roleArn"), "roleArn")
        name = inputs["pipelineName"]
        call(
            "sagemaker",
            "CreatePipeline",
            **_clean(
                {
                    "PipelineName": name,
                    "PipelineDisplayName": inputs.get("pipelineDisplayName"),
                    "PipelineDefinition": inputs.get("pipelineDefinition"),
                    "PipelineDescription": inputs.get("pipelineDescription"),
                    "RoleArn": inputs.get("roleArn"),
                    "ParallelismConfiguration": inputs.get("parallelismConfiguration"),
                    # The provider sends a fresh token on every create.
                    "ClientRequestToken": str(uuid.uuid4()),
                    "Tags": _tags(inputs),
                }
            ),
        )
        return name, self._read(call, name)

    @staticmethod
    def _read(call, name):
        return {"arn": call("sagemaker", "DescribePipeline", PipelineName=name)["PipelineArn"]}

    def update(self, call, id_, olds, news, changed):
        if "tags" in changed:
            _retag(call, self._read(call, id_)["arn"], olds, news)
        members = {
            "pipelineDefinition": "PipelineDefinition",
            "pipelineDescription": "PipelineDescription",
            "pipelineDisplayName": "PipelineDisplayName",
            "roleArn": "RoleArn",
            "parallelismConfiguration": "ParallelismConfiguration",
        }
        params = {members[k]: news.get(k) for k in changed if k in members}
        if params:
            references.role(call, news.get("roleArn"), "roleArn")
            call("sagemaker", "UpdatePipeline", PipelineName=id_, **_clean(params))
        return self._read(call, id_)

    def read(self, call, id_, inputs):
        return {} if call.exists("sagemaker", "DescribePipeline", PipelineName=id_) else None

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeletePipeline", PipelineName=id_, ClientRequestToken=str(uuid.uuid4()))


@register
class MlflowTrackingServer(Translation):
    type = "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer"
    force_new = frozenset({"trackingServerName", "roleArn", "mlflowVersion"})

    def create(self, call, inputs):
        references.role(call, inputs.get("roleArn"), "roleArn")
        name = inputs["trackingServerName"]
        call(
            "sagemaker",
            "CreateMlflowTrackingServer",
            **_clean(
                {
                    "TrackingServerName": name,
                    "ArtifactStoreUri": inputs["artifactStoreUri"],
                    "TrackingServerSize": inputs.get("trackingServerSize"),
                    "MlflowVersion": inputs.get("mlflowVersion"),
                    "RoleArn": inputs.get("roleArn"),
                    "AutomaticModelRegistration": inputs.get("automaticModelRegistration"),
                    "WeeklyMaintenanceWindowStart": inputs.get("weeklyMaintenanceWindowStart"),
                    "Tags": _tags(inputs),
                }
            ),
        )
        return name, self._read(call, name)

    @staticmethod
    def _read(call, name):
        found = call("sagemaker", "DescribeMlflowTrackingServer", TrackingServerName=name)
        return {"arn": found["TrackingServerArn"], "trackingServerUrl": found["TrackingServerUrl"]}

    def update(self, call, id_, olds, news, changed):
        members = {
            "artifactStoreUri": "ArtifactStoreUri",
            "trackingServerSize": "TrackingServerSize",
            "automaticModelRegistration": "AutomaticModelRegistration",
            "weeklyMaintenanceWindowStart": "WeeklyMaintenanceWindowStart",
        }
        if changed - set(members) - {"tags"}:
            return super().update(call, id_, olds, news, changed)
        params = {members[k]: news.get(k) for k in changed if k in members}
        if params:
            call("sagemaker", "UpdateMlflowTrackingServer", TrackingServerName=id_, **_clean(params))
        outputs = self._read(call, id_)
        if "tags" in changed:
            _retag(call, outputs["arn"], olds, news)
        return outputs

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeleteMlflowTrackingServer", TrackingServerName=id_)


@register
class Model(_TagsInPlace):
    type = "aws:sagemaker/model:Model"
    # Every input of a model forces a new one (the provider's schema), tags aside.
    force_new = frozenset(
        {
            "name",
            "primaryContainer",
            "containers",
            "executionRoleArn",
            "enableNetworkIsolation",
            "vpcConfig",
            "inferenceExecutionConfig",
        }
    )
    name_input = "name"
    name_max_length = 63

    def create(self, call, inputs):
        references.role(call, inputs.get("executionRoleArn"), "executionRoleArn")
        container = inputs.get("primaryContainer")
        if container:
            references.model_package(
                call, container.get("modelPackageName"), "primaryContainer.modelPackageName"
            )
        name = inputs["name"]
        call(
            "sagemaker",
            "CreateModel",
            **_clean(
                {
                    "ModelName": name,
                    "ExecutionRoleArn": inputs.get("executionRoleArn"),
                    "PrimaryContainer": container,
                    "Containers": inputs.get("containers"),
                    "EnableNetworkIsolation": inputs.get("enableNetworkIsolation"),
                    "VpcConfig": inputs.get("vpcConfig"),
                    "Tags": _tags(inputs),
                }
            ),
        )
        return name, {"arn": call("sagemaker", "DescribeModel", ModelName=name)["ModelArn"]}

    def _arn(self, call, id_):
        return call("sagemaker", "DescribeModel", ModelName=id_)["ModelArn"]

    def _describe(self, id_):
        return ("DescribeModel", {"ModelName": id_})

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeleteModel", ModelName=id_)


@register
class EndpointConfiguration(_TagsInPlace):
    type = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
    force_new = frozenset(
        {
            "name",
            "namePrefix",
            "productionVariants",
            "shadowProductionVariants",
            "dataCaptureConfig",
            "kmsKeyArn",
            "asyncInferenceConfig",
        }
    )
    name_input = "name"
    name_max_length = 63

    def create(self, call, inputs):
        references.kms_key(call, inputs.get("kmsKeyArn"), "kmsKeyArn")
        references.model_names(call, inputs.get("productionVariants"), "productionVariants")
        references.model_names(call, inputs.get("shadowProductionVariants"), "shadowProductionVariants")
        name = inputs["name"]
        call(
            "sagemaker",
            "CreateEndpointConfig",
            **_clean(
                {
                    "EndpointConfigName": name,
                    "ProductionVariants": inputs["productionVariants"],
                    "ShadowProductionVariants": inputs.get("shadowProductionVariants"),
                    "DataCaptureConfig": inputs.get("dataCaptureConfig"),
                    # The provider's kms_key_arn is the API's KmsKeyId.
                    "KmsKeyId": inputs.get("kmsKeyArn"),
                    "AsyncInferenceConfig": inputs.get("asyncInferenceConfig"),
                    "Tags": _tags(inputs),
                }
            ),
        )
        found = call("sagemaker", "DescribeEndpointConfig", EndpointConfigName=name)
        return name, {"arn": found["EndpointConfigArn"]}

    def _arn(self, call, id_):
        return call("sagemaker", "DescribeEndpointConfig", EndpointConfigName=id_)["EndpointConfigArn"]

    def _describe(self, id_):
        return ("DescribeEndpointConfig", {"EndpointConfigName": id_})

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeleteEndpointConfig", EndpointConfigName=id_)


# terraform-provider-aws waits this long for an endpoint to be InService after a create or an
# update (its resource's create/update timeouts), then fails the deploy.
ENDPOINT_WAIT_MINUTES = 60


@register
class Endpoint(Translation):
    type = "aws:sagemaker/endpoint:Endpoint"
    force_new = frozenset({"name"})
    name_input = "name"
    name_max_length = 63
    # What the endpoint serves, read back: after a rolled-back update it is the old
    # configuration, so the next deploy shows the difference (the bridge diffs the last read).
    read_back = frozenset({"endpointConfigName"})

    def create(self, call, inputs):
        name = inputs["name"]
        call(
            "sagemaker",
            "CreateEndpoint",
            **_clean(
                {
                    "EndpointName": name,
                    "EndpointConfigName": inputs["endpointConfigName"],
                    "DeploymentConfig": inputs.get("deploymentConfig"),
                    "Tags": _tags(inputs),
                }
            ),
        )
        described = _wait_in_service(call, name, "create")
        if described["EndpointStatus"] == "Failed":
            # The provider records the endpoint only once it is InService: a Failed one stays in
            # SageMaker, out of the state, and the next deploy's CreateEndpoint meets it.
            raise call.fail(
                f"waiting for SageMaker Endpoint ({name}) create: unexpected state 'Failed', wanted "
                f"target 'InService'. last error: {described.get('FailureReason')}. The endpoint is "
                "left in SageMaker and not recorded, as the provider leaves it: delete it "
                f"(aws sagemaker delete-endpoint --endpoint-name {name}) before the next deploy"
            )
        return name, self._outputs(described)

    @staticmethod
    def _outputs(described) -> dict:
        return {"arn": described["EndpointArn"], "endpointConfigName": described["EndpointConfigName"]}

    def update(self, call, id_, olds, news, changed):
        if "tags" in changed:
            arn = call("sagemaker", "DescribeEndpoint", EndpointName=id_)["EndpointArn"]
            _retag(call, arn, olds, news)
        if changed & {"endpointConfigName", "deploymentConfig"}:
            call(
                "sagemaker",
                "UpdateEndpoint",
                **_clean(
                    {
                        "EndpointName": id_,
                        "EndpointConfigName": news["endpointConfigName"],
                        "DeploymentConfig": news.get("deploymentConfig"),
                    }
                ),
            )
            described = _wait_in_service(call, id_, "update")
            if not call.dry and described["EndpointStatus"] != "InService":
                raise call.fail(
                    f"waiting for SageMaker Endpoint ({id_}) update: unexpected state "
                    f"'{described['EndpointStatus']}', wanted target 'InService'. "
                    f"last error: {described.get('FailureReason')}"
                )
            return self._outputs(described)
        return self._outputs(call("sagemaker", "DescribeEndpoint", EndpointName=id_))

    def read(self, call, id_, inputs):
        if not call.exists("sagemaker", "DescribeEndpoint", EndpointName=id_):
            return None
        described = call("sagemaker", "DescribeEndpoint", EndpointName=id_)
        return {"endpointConfigName": described["EndpointConfigName"]}

    def delete(self, call, id_, inputs):
        call("sagemaker", "DeleteEndpoint", EndpointName=id_)


def _wait_in_service(call, name: str, what: str, *, limit_minutes: int = ENDPOINT_WAIT_MINUTES) -> dict:
    """Wait, as the provider does after CreateEndpoint and UpdateEndpoint, until the endpoint is
    no longer Creating or Updating; its description then.

    In the emulator a blue/green rollout bakes on the virtual clock, so waiting moves that
    clock a minute at a time through the control route (/_mlops/clock). After the provider's
    60 minutes the deploy fails, as ``pulumi up`` does, while SageMaker carries on. The provider
    then deletes the old configuration, even after a rollback (terraform-provider-aws #48997).
    """
    url = call.client_for("sagemaker").meta.endpoint_url
    for _ in range(limit_minutes):
        described = call("sagemaker", "DescribeEndpoint", EndpointName=name)
        if described["EndpointStatus"] not in ("Creating", "Updating"):
            return described
        answer = requests.post(f"{url}/_mlops/clock", json={"advance": 60}, timeout=60)
        if answer.status_code == 404:  # an emulator without the behaviours: nothing bakes
            return described
        answer.raise_for_status()
    described = call("sagemaker", "DescribeEndpoint", EndpointName=name)
    if described["EndpointStatus"] not in ("Creating", "Updating"):
        return described
    raise call.fail(
        f"waiting for SageMaker Endpoint ({name}) {what}: timeout while waiting for state to become "
        f"'InService' (last state: '{described['EndpointStatus']}', timeout: {limit_minutes}m0s)"
    )
