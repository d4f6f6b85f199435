"""Application Auto Scaling: the endpoint variant's scalable target and its policy."""

from __future__ import annotations

from localcloud.translations.base import Translation, is_unknown, register, retag


def _check_variant(call, resource_id: str) -> None:
    """AWS refuses a scalable target on an endpoint variant that does not exist."""
    parts = resource_id.split("/")
    if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant":
        return
    if not call.exists("sagemaker", "DescribeEndpoint", EndpointName=parts[1]):
        raise call.fail(f"resourceId refers to endpoint {parts[1]!r}, which does not exist")
    variants = call("sagemaker", "DescribeEndpoint", EndpointName=parts[1]).get("ProductionVariants", [])
    if is_unknown(variants):  # a preview of an endpoint the deploy creates: checked when made
        return
    if parts[3] not in [v["VariantName"] for v in variants]:
        raise call.fail(
            f"resourceId refers to variant {parts[3]!r}, which endpoint {parts[1]!r} does not have"
        )


@register
class Target(Translation):
    type = "aws:appautoscaling/target:Target"
    force_new = frozenset({"resourceId", "scalableDimension", "serviceNamespace"})

    def create(self, call, inputs):
        if inputs["serviceNamespace"] == "sagemaker":
            _check_variant(call, inputs["resourceId"])
        answer = self._put(call, inputs)
        return inputs["resourceId"], {"arn": answer.get("ScalableTargetARN", "")}

    @staticmethod
    def _put(call, inputs):
        params = {
            "ServiceNamespace": inputs["serviceNamespace"],
            "ResourceId": inputs["resourceId"],
            "ScalableDimension": inputs["scalableDimension"],
            "MinCapacity": inputs.get("minCapacity"),
            "MaxCapacity": inputs.get("maxCapacity"),
            "RoleARN": inputs.get("roleArn"),
            "Tags": inputs.get("tags") or None,
        }
        return call(
            "application-autoscaling",
            "RegisterScalableTarget",
            **{k: v for k, v in params.items() if v is not None},
        )

    def update(self, call, id_, olds, news, changed):
        answer = self._put(call, {**news, "tags": None})
        arn = answer.get("ScalableTargetARN", "")
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("application-autoscaling", "TagResource", ResourceARN=arn, Tags=tags),
                lambda keys: call("application-autoscaling", "UntagResource", ResourceARN=arn, TagKeys=keys),
            )
        return {"arn": arn}

    def read(self, call, id_, inputs):
        found = call(
            "application-autoscaling",
            "DescribeScalableTargets",
            ServiceNamespace=inputs["serviceNamespace"],
            ResourceIds=[inputs["resourceId"]],
            ScalableDimension=inputs["scalableDimension"],
        )["ScalableTargets"]
        return {} if found else None

    def delete(self, call, id_, inputs):
        call(
            "application-autoscaling",
            "DeregisterScalableTarget",
            ServiceNamespace=inputs["serviceNamespace"],
            ResourceId=inputs["resourceId"],
            ScalableDimension=inputs["scalableDimension"],
        )


@register
class Policy(Translation):
    type = "aws:appautoscaling/policy:Policy"
    force_new = frozenset({"name", "resourceId", "scalableDimension", "serviceNamespace"})
    name_input = "name"
    name_max_length = 256

    def create(self, call, inputs):
        params = {
            "PolicyName": inputs["name"],
            "ServiceNamespace": inputs["serviceNamespace"],
            "ResourceId": inputs["resourceId"],
            "ScalableDimension": inputs["scalableDimension"],
            "PolicyType": inputs.get("policyType"),
            "TargetTrackingScalingPolicyConfiguration": inputs.get(
                "targetTrackingScalingPolicyConfiguration"
            ),
            "StepScalingPolicyConfiguration": inputs.get("stepScalingPolicyConfiguration"),
        }
        answer = call(
            "application-autoscaling",
            "PutScalingPolicy",
            **{k: v for k, v in params.items() if v is not None},
        )
        return inputs["name"], {
            "arn": answer["PolicyARN"],
            "alarmArns": [a["AlarmARN"] for a in answer.get("Alarms", [])],
        }

    def update(self, call, id_, olds, news, changed):
        return self.create(call, news)[1]

    def delete(self, call, id_, inputs):
        call(
            "application-autoscaling",
            "DeleteScalingPolicy",
            PolicyName=id_,
            ServiceNamespace=inputs["serviceNamespace"],
            ResourceId=inputs["resourceId"],
            ScalableDimension=inputs["scalableDimension"],
        )
