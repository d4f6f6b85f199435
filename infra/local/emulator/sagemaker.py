"""SageMaker where moto drops or lacks what the program's resources need.

* ``CreateEndpointConfig`` keeps ``ShadowProductionVariants`` (moto drops them), checking
  that their models exist as it does for production variants.
* ``CreateFeatureGroup`` keeps ``Description``, ``OnlineStoreConfig`` (its KMS key) and the
  ``DataCatalogConfig`` asked for (moto replaces it with its own database and table).
* ``CreateEndpoint`` refuses a name in use, as AWS does (moto silently replaces the endpoint),
  and records the ``DeploymentConfig`` it was created with.
* ``UpdateEndpoint`` (missing in moto) switches the endpoint to another configuration at once
  and reports the ``DeploymentConfig`` as ``LastDeploymentConfig``. Rollouts over time (bake,
  canary, linear, auto-rollback) are the next issue's behaviour, on the virtual clock.
* ``ListFeatureGroups``, ``DeleteFeatureGroup``, ``DeleteModelPackage`` and
  ``DeleteModelPackageGroup`` (missing in moto); a group that
  still holds model packages is refused, as on AWS.
* The MLflow tracking server API (missing in moto): Create, Describe, Update, Delete, List.
  The tracking URL is the one AWS's format gives; nothing serves it yet (next issue).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker import models as sm_models
from moto.sagemaker.exceptions import (
    ResourceInUseException,
    ResourceNotFound,
    ValidationError,
)
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter


def _backend(response: SageMakerResponse) -> sm_models.SageMakerModelBackend:
    return response.sagemaker_backend


# -- endpoint configurations and endpoints ---------------------------------------------------


def _wrap_create_endpoint_config(original):
    def create_endpoint_config(self: SageMakerResponse) -> ActionResult:
        shadows = self._get_param("ShadowProductionVariants") or []
        backend = _backend(self)
        backend.validate_production_variants(shadows)
        result = original(self)
        if shadows:
            config = backend.endpoint_configs[self._get_param("EndpointConfigName")]
            config.shadow_production_variants = copy.deepcopy(shadows)
        return result

    return create_endpoint_config


def _wrap_create_endpoint(original):
    def create_endpoint(self: SageMakerResponse) -> ActionResult:
        backend = _backend(self)
        name = self._get_param("EndpointName")
        if name in backend.endpoints:
            arn = sm_models.FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        result = original(self)
        deployment = self._get_param("DeploymentConfig")
        if deployment:
            backend.endpoints[name].last_deployment_config = copy.deepcopy(deployment)
        return result

    return create_endpoint


def update_endpoint(self: SageMakerResponse) -> ActionResult:
    backend = _backend(self)
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        arn = sm_models.FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
        raise ValidationError(message=f"Could not find endpoint '{arn}'.")
    config = backend.describe_endpoint_config(config_name)  # refuses a missing configuration
    endpoint.endpoint_config_name = config_name
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    endpoint.data_capture_config = config.get("DataCaptureConfig")
    endpoint.last_modified_time = utcnow()
    deployment = self._get_param("DeploymentConfig")
    if deployment:
        endpoint.last_deployment_config = copy.deepcopy(deployment)
    elif hasattr(endpoint, "last_deployment_config"):
        del endpoint.last_deployment_config
    return ActionResult({"EndpointArn": endpoint.arn})


# -- feature groups --------------------------------------------------------------------------


def _wrap_create_feature_group(original):
    def create_feature_group(self: SageMakerResponse) -> ActionResult:
        # moto rewrites the offline store config in place: keep what was asked for first.
        catalog = copy.deepcopy((self._get_param("OfflineStoreConfig") or {}).get("DataCatalogConfig"))
        result = original(self)
        backend = _backend(self)
        name = self._get_param("FeatureGroupName")
        group = next(g for g in backend.feature_groups.values() if g.feature_group_name == name)
        group.requested_description = self._get_param("Description")
        group.online_store_config = copy.deepcopy(self._get_param("OnlineStoreConfig"))
        if catalog:
            group.offline_store_config["DataCatalogConfig"] = catalog
        return result

    return create_feature_group


def _wrap_feature_group_describe(original):
    def describe(self: sm_models.FeatureGroup) -> dict[str, Any]:
        answer = original(self)
        if getattr(self, "requested_description", None):
            answer["Description"] = self.requested_description
        if getattr(self, "online_store_config", None):
            answer["OnlineStoreConfig"] = self.online_store_config
        return answer

    return describe


def delete_feature_group(self: SageMakerResponse) -> ActionResult:
    backend = _backend(self)
    name = self._get_param("FeatureGroupName")
    arn = next((arn for arn, g in backend.feature_groups.items() if g.feature_group_name == name), None)
    if arn is None:
        raise ResourceNotFound(message=f"Resource Not Found: FeatureGroup with name {name} not found.")
    del backend.feature_groups[arn]
    return ActionResult({})


def delete_model_package_group(self: SageMakerResponse) -> ActionResult:
    backend = _backend(self)
    name = self._get_param("ModelPackageGroupName")
    if name not in backend.model_package_groups:
        raise ValidationError(message=f"ModelPackageGroup {name} does not exist.")
    # AWS refuses to delete a group that still holds model packages.
    if any(p.model_package_group_name == name for p in backend.model_packages.values()):
        raise ValidationError(
            message=f"Model package group {name} contains model packages; delete them first."
        )
    del backend.model_package_groups[name]
    return ActionResult({})


def list_feature_groups(self: SageMakerResponse) -> ActionResult:
    summaries = [
        {
            "FeatureGroupName": g.feature_group_name,
            "FeatureGroupArn": g.arn,
            "CreationTime": g.creation_time,
            "FeatureGroupStatus": "Created",
        }
        for g in _backend(self).feature_groups.values()
    ]
    return ActionResult({"FeatureGroupSummaries": summaries})


def delete_model_package(self: SageMakerResponse) -> ActionResult:
    backend = _backend(self)
    name = self._get_param("ModelPackageName")
    package = backend.describe_model_package(name)  # refuses a missing package
    key = next(k for k, p in backend.model_packages.items() if p is package)
    del backend.model_packages[key]
    for alias in [a for a, k in backend.model_package_name_mapping.items() if k == key]:
        del backend.model_package_name_mapping[alias]
    return ActionResult({})


# -- MLflow tracking servers -----------------------------------------------------------------


def _servers(self: SageMakerResponse) -> dict[str, dict[str, Any]]:
    backend = _backend(self)
    if not hasattr(backend, "mlflow_tracking_servers"):
        backend.mlflow_tracking_servers = {}
    return backend.mlflow_tracking_servers


def _server(self: SageMakerResponse) -> dict[str, Any]:
    name = self._get_param("TrackingServerName")
    found = _servers(self).get(name)
    if found is None:
        raise ResourceNotFound(message=f"Tracking server {name} does not exist.")
    return found


def create_mlflow_tracking_server(self: SageMakerResponse) -> ActionResult:
    backend = _backend(self)
    name = self._get_param("TrackingServerName")
    if name in _servers(self):
        raise ResourceInUseException(message=f"Tracking server {name} already exists.")
    now = utcnow()
    server = {
        "TrackingServerArn": arn_formatter(
            "mlflow-tracking-server", name, backend.account_id, backend.region_name
        ),
        "TrackingServerName": name,
        "ArtifactStoreUri": self._get_param("ArtifactStoreUri"),
        "TrackingServerSize": self._get_param("TrackingServerSize") or "Small",
        "MlflowVersion": self._get_param("MlflowVersion") or "2.16.2",
        "RoleArn": self._get_param("RoleArn"),
        "TrackingServerStatus": "Created",
        "IsActive": "Active",
        "TrackingServerUrl": f"https://{name}.{backend.region_name}.experiments.sagemaker.aws",
        "WeeklyMaintenanceWindowStart": self._get_param("WeeklyMaintenanceWindowStart") or "Sun:00:00",
        "AutomaticModelRegistration": bool(self._get_param("AutomaticModelRegistration")),
        "CreationTime": now,
        "LastModifiedTime": now,
        "Tags": self._get_param("Tags") or [],
    }
    _servers(self)[name] = server
    return ActionResult({"TrackingServerArn": server["TrackingServerArn"]})


def describe_mlflow_tracking_server(self: SageMakerResponse) -> ActionResult:
    return ActionResult({k: v for k, v in _server(self).items() if k != "Tags"})


def update_mlflow_tracking_server(self: SageMakerResponse) -> ActionResult:
    server = _server(self)
    for member in (
        "ArtifactStoreUri",
        "TrackingServerSize",
        "AutomaticModelRegistration",
        "WeeklyMaintenanceWindowStart",
    ):
        value = self._get_param(member)
        if value is not None:
            server[member] = value
    server["LastModifiedTime"] = utcnow()
    return ActionResult({"TrackingServerArn": server["TrackingServerArn"]})


def delete_mlflow_tracking_server(self: SageMakerResponse) -> ActionResult:
    server = _server(self)
    del _servers(self)[server["TrackingServerName"]]
    return ActionResult({"TrackingServerArn": server["TrackingServerArn"]})


def list_mlflow_tracking_servers(self: SageMakerResponse) -> ActionResult:
    keys = (
        "TrackingServerArn",
        "TrackingServerName",
        "CreationTime",
        "LastModifiedTime",
        "TrackingServerStatus",
        "IsActive",
        "MlflowVersion",
    )
    return ActionResult(
        {"TrackingServerSummaries": [{k: s[k] for k in keys} for s in _servers(self).values()]}
    )


def install() -> None:
    cls = SageMakerResponse
    cls.create_endpoint_config = _wrap_create_endpoint_config(cls.create_endpoint_config)
    cls.create_endpoint = _wrap_create_endpoint(cls.create_endpoint)
    cls.update_endpoint = update_endpoint
    cls.create_feature_group = _wrap_create_feature_group(cls.create_feature_group)
    cls.delete_feature_group = delete_feature_group
    cls.list_feature_groups = list_feature_groups
    cls.delete_model_package_group = delete_model_package_group
    cls.delete_model_package = delete_model_package
    sm_models.FeatureGroup.describe = _wrap_feature_group_describe(sm_models.FeatureGroup.describe)
    cls.create_mlflow_tracking_server = create_mlflow_tracking_server
    cls.describe_mlflow_tracking_server = describe_mlflow_tracking_server
    cls.update_mlflow_tracking_server = update_mlflow_tracking_server
    cls.delete_mlflow_tracking_server = delete_mlflow_tracking_server
    cls.list_mlflow_tracking_servers = list_mlflow_tracking_servers
