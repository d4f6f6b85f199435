"""ECR: the project image's repository and its lifecycle policy."""

from __future__ import annotations

from localcloud.translations import references
from localcloud.translations.base import Translation, register, retag, tag_list


@register
class Repository(Translation):
    type = "aws:ecr/repository:Repository"
    force_new = frozenset({"name", "encryptionConfigurations"})
    name_input = "name"
    name_max_length = 256

    def create(self, call, inputs):
        encryption = (inputs.get("encryptionConfigurations") or [None])[0]
        references.kms_key(call, (encryption or {}).get("kmsKey"), "encryptionConfigurations[0].kmsKey")
        params = {
            "repositoryName": inputs["name"],
            "imageTagMutability": inputs.get("imageTagMutability"),
            "imageScanningConfiguration": inputs.get("imageScanningConfiguration"),
            # The provider's list of one encryption configuration is the API's single one.
            "encryptionConfiguration": encryption,
            "tags": tag_list(inputs.get("tags")) or None,
        }
        call("ecr", "CreateRepository", **{k: v for k, v in params.items() if v is not None})
        return inputs["name"], self._read(call, inputs["name"])

    @staticmethod
    def _read(call, name: str) -> dict:
        repo = call("ecr", "DescribeRepositories", repositoryNames=[name])["repositories"][0]
        return {
            "arn": repo["repositoryArn"],
            "registryId": repo["registryId"],
            "repositoryUrl": repo["repositoryUri"],
        }

    def update(self, call, id_, olds, news, changed):
        if changed - {"imageTagMutability", "imageScanningConfiguration", "tags", "forceDelete"}:
            return super().update(call, id_, olds, news, changed)
        if "imageTagMutability" in changed:
            call(
                "ecr",
                "PutImageTagMutability",
                repositoryName=id_,
                imageTagMutability=news["imageTagMutability"],
            )
        if "imageScanningConfiguration" in changed:
            call(
                "ecr",
                "PutImageScanningConfiguration",
                repositoryName=id_,
                imageScanningConfiguration=news["imageScanningConfiguration"],
            )
        outputs = self._read(call, id_)
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("ecr", "TagResource", resourceArn=outputs["arn"], tags=tag_list(tags)),
                lambda keys: call("ecr", "UntagResource", resourceArn=outputs["arn"], tagKeys=keys),
            )
        return outputs

    def read(self, call, id_, inputs):
        return {} if call.exists("ecr", "DescribeRepositories", repositoryNames=[id_]) else None

    def delete(self, call, id_, inputs):
        call("ecr", "DeleteRepository", repositoryName=id_, force=bool(inputs.get("forceDelete")))


@register
class LifecyclePolicy(Translation):
    type = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
    force_new = frozenset({"repository"})

    def create(self, call, inputs):
        answer = call(
            "ecr",
            "PutLifecyclePolicy",
            repositoryName=inputs["repository"],
            lifecyclePolicyText=inputs["policy"],
        )
        return inputs["repository"], {"registryId": answer["registryId"]}

    def update(self, call, id_, olds, news, changed):
        return self.create(call, news)[1]

    def delete(self, call, id_, inputs):
        call("ecr", "DeleteLifecyclePolicy", repositoryName=id_)
