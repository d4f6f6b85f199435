"""SageMaker where moto drops or lacks what the program's resources need.

* ``CreateEndpointConfig`` keeps ``ShadowProductionVariants`` (moto drops them), checking
  that their models exist as it does for production variants; ``DescribeEndpoint`` shows those
  of the configuration the endpoint serves (``set_shadow_variants``, also after an update).
* ``CreateFeatureGroup`` keeps ``Description``, ``OnlineStoreConfig`` (its KMS key) and the
  ``DataCatalogConfig`` asked for (moto replaces it with its own database and table).
* ``CreateEndpoint`` refuses a name in use, as AWS does (moto silently replaces the endpoint),
  and records the ``DeploymentConfig`` it was created with.
* ``ListFeatureGroups``, ``DeleteFeatureGroup``, ``DeleteModelPackage`` and
  ``DeleteModelPackageGroup`` (missing in moto); a group that
  still holds model packages is refused, as on AWS.
* ``AddTags``, ``DeleteTags`` and ``ListTags`` on a feature group (moto finds no resource
  behind a feature-group ARN and answers HTTP 500), so its tags change in place as on AWS.

``UpdateEndpoint`` (rollouts on the virtual clock) and the MLflow tracking server API (a local
mlflow server) are the behaviours' (localcloud/behaviours/rollouts.py, mlflow_tracking.py):
one implementation per API, installed over these by ``Emulator.start``.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.sagemaker import models as sm_models
from moto.sagemaker.exceptions import (
    ResourceNotFound,
    ValidationError,
)
from moto.sagemaker.responses import SageMakerResponse


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


def set_shadow_variants(endpoint: sm_models.FakeEndpoint, shadows: list[dict[str, Any]]) -> None:
    """DescribeEndpoint's ShadowProductionVariants for the configuration it now serves (moto has none)."""
    endpoint.shadow_production_variants = endpoint._process_production_variants(shadows) or None


def _wrap_create_endpoint(original):
    def create_endpoint(self: SageMakerResponse) -> ActionResult:
        backend = _backend(self)
        name = self._get_param("EndpointName")
        if name in backend.endpoints:
            arn = sm_models.FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        result = original(self)
        config = backend.endpoint_configs[self._get_param("EndpointConfigName")]
        set_shadow_variants(
            backend.endpoints[name], getattr(config, "shadow_production_variants", None) or []
        )
        deployment = self._get_param("DeploymentConfig")
        if deployment:
            backend.endpoints[name].last_deployment_config = copy.deepcopy(deployment)
        return result

    return create_endpoint


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


def _wrap_resource_from_arn(original):
    def get_resource_from_arn(self: sm_models.SageMakerModelBackend, arn: str) -> Any:
        if ":feature-group/" in arn:
            # moto keys feature groups by ARN (by the name in the ARN's case, as AWS lowercases it).
            found = self.feature_groups.get(arn) or next(
                (g for a, g in self.feature_groups.items() if a.lower() == arn.lower()), None
            )
            if found is None:
                raise ValidationError(message=f"Could not find feature-group with ARN {arn}")
            found.tags = found.tags or []
            return found
        return original(self, arn)

    return get_resource_from_arn


def install() -> None:
    backend = sm_models.SageMakerModelBackend
    backend._get_resource_from_arn = _wrap_resource_from_arn(backend._get_resource_from_arn)
    cls = SageMakerResponse
    cls.create_endpoint_config = _wrap_create_endpoint_config(cls.create_endpoint_config)
    cls.create_endpoint = _wrap_create_endpoint(cls.create_endpoint)
    cls.create_feature_group = _wrap_create_feature_group(cls.create_feature_group)
    cls.delete_feature_group = delete_feature_group
    cls.list_feature_groups = list_feature_groups
    cls.delete_model_package_group = delete_model_package_group
    cls.delete_model_package = delete_model_package
    sm_models.FeatureGroup.describe = _wrap_feature_group_describe(sm_models.FeatureGroup.describe)
