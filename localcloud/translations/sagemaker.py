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
from localcloud.translations.base import Translation, register, tag_list


def _tags(inputs):
    return tag_list(inputs.get("tags")) or None


def _clean(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}


@register
class FeatureGroup(Translation):
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

    def delete(self, call, id_, inputs, outputs):
        call("sagemaker", "DeleteFeatureGroup", FeatureGroupName=id_)


@register
class ModelPackageGroup(Translation):
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

    def delete(self, call, id_, inputs, outputs):
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
            arn = self._read(call, id_)["arn"]
            call("sagemaker", "AddTags", ResourceArn=arn, Tags=_tags(news) or [])
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

    def delete(self, call, id_, inputs, outputs):
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
        return self._read(call, id_)

    def delete(self, call, id_, inputs, outputs):
        call("sagemaker", "DeleteMlflowTrackingServer", TrackingServerName=id_)


@register
class Model(Translation):
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

    def delete(self, call, id_, inputs, outputs):
        call("sagemaker", "DeleteModel", ModelName=id_)


@register
class EndpointConfiguration(Translation):
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

    def delete(self, call, id_, inputs, outputs):
        call("sagemaker", "DeleteEndpointConfig", EndpointConfigName=id_)


@register
class Endpoint(Translation):
    type = "aws:sagemaker/endpoint:Endpoint"
    force_new = frozenset({"name"})
    name_input = "name"
    name_max_length = 63

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
        described = call("sagemaker", "DescribeEndpoint", EndpointName=name)
        if described["EndpointStatus"] == "Failed":
            # The provider waits for InService and fails here, keeping the endpoint as tainted to
            # be replaced by the next update; with no taint in this engine's state it goes now.
            call("sagemaker", "DeleteEndpoint", EndpointName=name)
            raise call.fail(
                f"waiting for SageMaker Endpoint ({name}) create: unexpected state 'Failed', wanted "
                f"target 'InService'. last error: {described.get('FailureReason')}"
            )
        return name, {"arn": described["EndpointArn"]}

    @staticmethod
    def _read(call, name):
        return {"arn": call("sagemaker", "DescribeEndpoint", EndpointName=name)["EndpointArn"]}

    def update(self, call, id_, olds, news, changed):
        if "tags" in changed:
            call("sagemaker", "AddTags", ResourceArn=self._read(call, id_)["arn"], Tags=_tags(news) or [])
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
            _wait_in_service(call, id_)
        return self._read(call, id_)

    def delete(self, call, id_, inputs, outputs):
        call("sagemaker", "DeleteEndpoint", EndpointName=id_)


def _wait_in_service(call, name: str, *, limit_minutes: int = 24 * 60) -> None:
    """Wait, as the provider does after UpdateEndpoint, until the endpoint is InService again.

    In the emulator a blue/green rollout bakes on the virtual clock, so waiting moves that
    clock a minute at a time through the control route (/_mlops/clock). The provider then
    deletes the old configuration, even after a rollback (terraform-provider-aws #48997).
    """
    url = call.client_for("sagemaker").meta.endpoint_url
    for _ in range(limit_minutes):
        if call("sagemaker", "DescribeEndpoint", EndpointName=name)["EndpointStatus"] != "Updating":
            return
        answer = requests.post(f"{url}/_mlops/clock", json={"advance": 60}, timeout=60)
        if answer.status_code == 404:  # an emulator without the behaviours: nothing bakes
            return
        answer.raise_for_status()
    raise call.fail(f"UpdateEndpoint: {name} still Updating after {limit_minutes} minutes")
