"""Lambda: functions (code zipped from the program's asset archive) and their permissions."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from localcloud.translations import references
from localcloud.translations.base import Translation, archive_bytes, register, retag

_CONFIG = {
    "role": "Role",
    "handler": "Handler",
    "runtime": "Runtime",
    "description": "Description",
    "timeout": "Timeout",
    "memorySize": "MemorySize",
    "environment": "Environment",
    "kmsKeyArn": "KMSKeyArn",
    "loggingConfig": "LoggingConfig",
    "layers": "Layers",
}


def zip_archive(call, code: dict[str, Any] | None) -> bytes:
    if not code or code.get("kind") != "archive":
        raise call.fail("code: only an AssetArchive of file and string assets has a translation")
    return archive_bytes(code)


@register
class Function(Translation):
    type = "aws:lambda/function:Function"
    force_new = frozenset({"name"})
    name_input = "name"
    name_max_length = 64

    def create(self, call, inputs):
        references.role(call, inputs.get("role"), "role")
        references.kms_key(call, inputs.get("kmsKeyArn"), "kmsKeyArn")
        package = zip_archive(call, inputs.get("code"))
        params = {api: inputs.get(tf) for tf, api in _CONFIG.items()}
        params.update(
            FunctionName=inputs["name"],
            Code={"ZipFile": package},
            Architectures=inputs.get("architectures"),
            Publish=inputs.get("publish"),
            Tags=inputs.get("tags") or None,
        )
        call("lambda", "CreateFunction", **{k: v for k, v in params.items() if v is not None})
        return inputs["name"], self._read(call, inputs["name"], package)

    @staticmethod
    def _read(call, name: str, package: bytes) -> dict:
        config = call("lambda", "GetFunctionConfiguration", FunctionName=name)
        arn = config["FunctionArn"]
        return {
            "arn": arn,
            "qualifiedArn": f"{arn}:{config.get('Version', '$LATEST')}",
            "invokeArn": f"arn:aws:apigateway:{call.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            "version": config.get("Version", "$LATEST"),
            "sourceCodeHash": base64.b64encode(hashlib.sha256(package).digest()).decode(),
        }

    def update(self, call, id_, olds, news, changed):
        package = zip_archive(call, news.get("code"))
        config = changed & set(_CONFIG)
        if config:
            references.role(call, news.get("role"), "role")
            params = {_CONFIG[k]: news.get(k) for k in config}
            call(
                "lambda",
                "UpdateFunctionConfiguration",
                FunctionName=id_,
                **{k: v for k, v in params.items() if v is not None},
            )
        if changed & {"code", "architectures"}:
            call(
                "lambda",
                "UpdateFunctionCode",
                FunctionName=id_,
                ZipFile=package,
                Architectures=news.get("architectures"),
            )
        outputs = self._read(call, id_, package)
        if "tags" in changed:
            retag(
                olds,
                news,
                lambda tags: call("lambda", "TagResource", Resource=outputs["arn"], Tags=tags),
                lambda keys: call("lambda", "UntagResource", Resource=outputs["arn"], TagKeys=keys),
            )
        return outputs

    def read(self, call, id_, inputs):
        return {} if call.exists("lambda", "GetFunction", FunctionName=id_) else None

    def delete(self, call, id_, inputs):
        call("lambda", "DeleteFunction", FunctionName=id_)


@register
class Permission(Translation):
    type = "aws:lambda/permission:Permission"
    # Every input of a permission forces a new one (the provider's schema).
    force_new = frozenset(
        {
            "action",
            "function",
            "principal",
            "sourceArn",
            "sourceAccount",
            "statementId",
            "statementIdPrefix",
            "qualifier",
        }
    )
    name_input = "statementId"
    name_max_length = 100

    def create(self, call, inputs):
        params = {
            "FunctionName": inputs["function"],
            "StatementId": inputs["statementId"],
            "Action": inputs["action"],
            "Principal": inputs["principal"],
            "SourceArn": inputs.get("sourceArn"),
            "SourceAccount": inputs.get("sourceAccount"),
            "Qualifier": inputs.get("qualifier"),
        }
        call("lambda", "AddPermission", **{k: v for k, v in params.items() if v is not None})
        return inputs["statementId"], {}

    def delete(self, call, id_, inputs):
        call("lambda", "RemovePermission", FunctionName=inputs["function"], StatementId=id_)
