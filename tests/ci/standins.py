"""What the rehearsal against the local cloud puts in place of the job images' own tools.

Only where nothing else can run here:

* ``aws``: the AWS CLI is not installed here; this is its subset the ``.ci/`` scripts call
  (``aws <service> <operation> --param value ... [--query Q] [--output text|json]`` on any
  operation of botocore's models, and ``aws ecr get-login-password``), made with botocore as the
  CLI is: the SDK's credential chain (so a job's ``AWS_ROLE_ARN`` and
  ``AWS_WEB_IDENTITY_TOKEN_FILE`` are exchanged by ``AssumeRoleWithWebIdentity`` at the
  emulator's STS), ``AWS_ENDPOINT_URL``, JMESPath queries, the CLI's text output, and its
  errors (``An error occurred (<Code>) when calling the <Operation> operation: ...``, exit 254);
* ``buildah``: no container builder runs here. ``build`` makes the image manifest the build
  would make (its config digest from the Dockerfile, the build arguments and the commit's
  timestamp, so the same commit builds the same digest); ``push`` puts that manifest into the
  emulator's ECR with the job's credentials and writes the digest ECR answers to
  ``--digestfile``. ECR starts a basic scan on push where the repository asks for one
  (``scanOnPush``), which moto does not: the stand-in starts it (``StartImageScan``) with the
  emulator's own credentials, as ECR's doing, not the job's;
* ``dnf`` (the build job installs the AWS CLI with it) and ``make`` (the test job's ``make
  test`` is the suite that runs this rehearsal): they record the call and succeed.

Every call is appended to ``$REHEARSAL_LOG``; built images live under ``$REHEARSAL_IMAGES``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path

TOOLS = ("aws", "buildah", "dnf", "make")
ROOT = Path(__file__).resolve().parents[2]


def install(bin_dir: Path) -> None:
    """An executable per tool in ``bin_dir``, each running this module with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        path = bin_dir / tool
        path.write_text(
            f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -P -m tests.ci.standins {tool} "$@"\n'
        )
        path.chmod(0o755)


def _log(tool: str, args: list[str]) -> None:
    with open(os.environ["REHEARSAL_LOG"], "a") as log:
        log.write(" ".join([tool, *args]) + "\n")


def _session():
    import boto3

    # The CLI reads AWS_REGION as well as AWS_DEFAULT_REGION (botocore only the latter).
    return boto3.Session(region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


def _client_error(exc) -> int:
    error = exc.response["Error"]
    sys.stderr.write(
        f"\nAn error occurred ({error.get('Code')}) when calling the {exc.operation_name} operation: "
        f"{error.get('Message')}\n"
    )
    return 254


# -- aws -----------------------------------------------------------------------------------------
def _shorthand(text: str) -> dict:
    """The CLI's shorthand ``key=value,key2=value2`` for a structure."""
    out = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"expected key=value in {text!r}")
        out[key.strip()] = value
    return out


def _value(shape, values: list[str]):
    kind = shape.type_name
    if kind == "list":
        member = shape.member
        if len(values) == 1 and values[0].lstrip().startswith("["):
            return json.loads(values[0])
        return [_value(member, [v]) for v in values]
    (value,) = values
    if kind == "structure":
        return json.loads(value) if value.lstrip().startswith("{") else _shorthand(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind == "boolean":
        return value.lower() == "true"
    if kind in ("map",):
        return json.loads(value)
    return value


def _text(value) -> str:
    """The CLI's ``--output text`` for what a query selects: scalars as they are, ``None`` for
    null, a list's scalars tab-separated on one line."""
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return "\t".join("None" if v is None else str(v) for v in value)
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "\t".join(_text(v) for v in value.values())
    return "None" if value is None else str(value)


def aws(args: list[str]) -> int:
    import jmespath
    from botocore import xform_name
    from botocore.exceptions import BotoCoreError, ClientError

    if len(args) < 2:
        sys.stderr.write("usage: aws <service> <operation> [--param value ...]\n")
        return 252
    service, operation, rest = args[0], args[1], args[2:]
    options: dict[str, list[str]] = {}
    name = None
    for word in rest:
        if word.startswith("--"):
            name = word[2:]
            options[name] = []
        elif name is None:
            sys.stderr.write(f"aws: unexpected argument {word!r}\n")
            return 252
        else:
            options[name].append(word)
    query = options.pop("query", [None])[0]
    output = options.pop("output", ["json"])[0]
    try:
        client = _session().client(service)
        if (service, operation) == ("ecr", "get-login-password"):
            token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
            print(base64.b64decode(token).decode().split(":", 1)[1])
            return 0
        names = {xform_name(op).replace("_", "-"): op for op in client.meta.service_model.operation_names}
        if operation not in names:
            sys.stderr.write(f"aws: {service} {operation}: no such operation (or not supported here)\n")
            return 252
        model = client.meta.service_model.operation_model(names[operation])
        members = model.input_shape.members if model.input_shape else {}
        by_option = {xform_name(m).replace("_", "-"): m for m in members}
        params = {}
        for option, values in options.items():
            if option not in by_option:
                sys.stderr.write(f"aws: {service} {operation}: unknown option --{option}\n")
                return 252
            member = by_option[option]
            params[member] = _value(members[member], values)
        response = getattr(client, xform_name(names[operation]))(**params)
    except ClientError as exc:
        return _client_error(exc)
    except BotoCoreError as exc:
        sys.stderr.write(f"\n{exc}\n")
        return 253
    response.pop("ResponseMetadata", None)
    selected = jmespath.search(query, response) if query else response
    print(_text(selected) if output == "text" else json.dumps(selected, indent=4, default=str))
    return 0


# -- buildah --------------------------------------------------------------------------------------
def _images() -> Path:
    path = Path(os.environ["REHEARSAL_IMAGES"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _scan_on_push(repository: str, tag: str) -> None:
    """What ECR does itself after a push, so not as the job's role: a repository configured to
    scan on push starts a basic scan of the pushed image."""
    import boto3

    ecr = boto3.Session(
        region_name=os.environ.get("AWS_REGION"), aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("ecr")
    (found,) = ecr.describe_repositories(repositoryNames=[repository])["repositories"]
    if found.get("imageScanningConfiguration", {}).get("scanOnPush"):
        ecr.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})


def buildah(args: list[str]) -> int:
    command = args[0] if args else ""
    if command == "login":
        if not sys.stdin.read().strip():
            sys.stderr.write("Error: no password on stdin\n")
            return 125
        print("Login Succeeded!")
        return 0
    if command == "build":
        tag, dockerfile = _flag(args, "--tag"), _flag(args, "--file") or "Dockerfile"
        build_args = sorted(args[i + 1] for i, a in enumerate(args) if a == "--build-arg")
        config = {
            "dockerfile": hashlib.sha256(Path(dockerfile).read_bytes()).hexdigest(),
            "buildArgs": build_args,
            "created": _flag(args, "--timestamp"),
        }
        blob = json.dumps(config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(blob),
                "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            },
            "layers": [],
        }
        (_images() / f"{tag}.json").write_text(json.dumps(manifest, sort_keys=True))
        print(f"Successfully tagged localhost/{tag}")
        return 0
    if command == "push":
        from botocore.exceptions import ClientError

        source, destination = args[-2], args[-1].removeprefix("docker://")
        registry, _, reference = destination.partition("/")
        repository, _, tag = reference.rpartition(":")
        manifest = (_images() / f"{source}.json").read_text()
        ecr = _session().client("ecr")
        try:
            image = ecr.put_image(
                registryId=registry.split(".")[0],
                repositoryName=repository,
                imageManifest=manifest,
                imageTag=tag,
            )["image"]
            _scan_on_push(repository, tag)
        except ClientError as exc:
            sys.stderr.write(f"Error: pushing image to {destination}:\n")
            _client_error(exc)
            return 125
        Path(_flag(args, "--digestfile")).write_text(image["imageId"]["imageDigest"])
        return 0
    sys.stderr.write(f"buildah {command}: not supported by the rehearsal's stand-in\n")
    return 125


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    _log(tool, args)
    if tool == "aws":
        return aws(args)
    if tool == "buildah":
        return buildah(args)
    return 0  # dnf, make: recorded


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
