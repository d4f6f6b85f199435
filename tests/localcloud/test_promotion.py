"""A model approved in dev reaches staging as staging's own copy, in one emulator with both stacks.

dev is deployed with a GitLab trigger, staging as committed; the same image is pushed to both
stacks' repositories (as the build job does). A package is registered in dev where the training
pipeline writes (model, evaluation, drift baseline) and approved; the approval's recorded
GitLab call becomes the promotion pipeline's variables, and its deploy jobs run as
``.ci/deploy`` does: ``mlops promote``, then the deploy with the printed package. Everything is
read back through boto3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from localcloud.behaviours import registry, targets
from localcloud.emulator import authorisation
from localcloud.engine import Engine
from localcloud.gitlab_trigger import TriggerRefused, deploy_jobs, pipeline_variables, rehearse
from localcloud.state import State
from mlops import promote as promote_mod
from tests.localcloud.behaviours.endpoint_setup import pack

ACCOUNT = "123456789012"
BOOTSTRAP = Path(__file__).resolve().parents[2] / "infra" / "bootstrap"
TRIGGER = "https://gitlab.example.com/api/v4/projects/42/trigger/pipeline"
DEV_CONFIG = {
    "mlops-platform:gitlabTriggerUrl": TRIGGER,
    "mlops-platform:gitlabTriggerToken": "glptt-local",
}
TRAINING = "pipelines/customer-churn-dev-training"
TAG = "c0ffee"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "a" * 64,
        },
        "layers": [],
    }
)


class Stacks:
    def __init__(self, emulator, state_dir, model_dir):
        self.emulator = emulator
        self.state_dir = state_dir
        self.artifact = pack(model_dir)
        # The committed stacks use the bootstrap's image repositories (imageRepositoryExists), as
        # on AWS: the bootstrap is deployed first.
        Engine("bootstrap", emulator.endpoint_url, root=BOOTSTRAP, state_dir=state_dir).up()
        self.dev = (
            Engine("dev", emulator.endpoint_url, state_dir=state_dir, overrides=DEV_CONFIG).up().outputs
        )
        self.staging = Engine("staging", emulator.endpoint_url, state_dir=state_dir).up().outputs
        ecr = emulator.client("ecr")
        for stack in ("dev", "staging"):
            ecr.put_image(repositoryName=f"customer-churn-{stack}", imageManifest=MANIFEST, imageTag=TAG)
        (image,) = ecr.describe_images(repositoryName="customer-churn-dev", imageIds=[{"imageTag": TAG}])[
            "imageDetails"
        ]
        self.digest = image["imageDigest"]
        self.package_count = 0

    def client(self, service):
        return self.emulator.client(service)

    def register_in_dev(self, *, approve: bool = True, auc: str | None = "0.9") -> str:
        """A package as the training pipeline registers it in dev, then approved by a person."""
        self.package_count += 1
        n, bucket, s3 = self.package_count, self.dev["bucket"], self.client("s3")
        model = f"{TRAINING}/models/job-{n}/output/model.tar.gz"
        evaluation = f"{TRAINING}/exec-{n}/EvaluateModel/evaluation/evaluation.json"
        baseline = f"{TRAINING}/exec-{n}/EvaluateModel/baseline/baseline.json"
        s3.put_object(Bucket=bucket, Key=model, Body=self.artifact)
        s3.put_object(Bucket=bucket, Key=evaluation, Body=json.dumps({"auc": 0.9, "n": n}).encode())
        s3.put_object(Bucket=bucket, Key=baseline, Body=json.dumps({"features": {}, "n": n}).encode())

        def report(key):
            return {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{key}"}

        sm = self.client("sagemaker")
        arn = sm.create_model_package(
            ModelPackageGroupName="customer-churn-dev",
            ModelPackageDescription="customer-churn model trained by the customer-churn-dev-training pipeline",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-dev:{TAG}",
                        "ModelDataUrl": f"s3://{bucket}/{model}",
                    }
                ],
                "SupportedContentTypes": ["application/json", "text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelMetrics={"ModelQuality": {"Statistics": report(evaluation)}},
            DriftCheckBaselines={"ModelDataQuality": {"Statistics": report(baseline)}},
            CustomerMetadataProperties={
                "DataStart": "2026-01-01T00:00:00Z",
                "DataEnd": "2026-03-01T00:00:00Z",
                **({"Auc": auc} if auc is not None else {}),
                "TriggerReason": "manual",
            },
        )["ModelPackageArn"]
        if approve:
            sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
        return arn

    def calls_for(self, arn: str) -> list[dict]:
        return [
            c for c in targets.API_DESTINATION_CALLS if c["body"]["variables"]["MODEL_PACKAGE_ARN"] == arn
        ]

    def staging_packages(self) -> list[dict]:
        sm = self.client("sagemaker")
        summaries = sm.list_model_packages(ModelPackageGroupName="customer-churn-staging")[
            "ModelPackageSummaryList"
        ]
        return [sm.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


@pytest.fixture(scope="module")
def stacks(emulator, tmp_path_factory, model_dir):
    emulator.reset()
    registry.seed_duplicates(rate=0.0)  # the duplicate test forces its own
    return Stacks(emulator, tmp_path_factory.mktemp("state"), model_dir)


@pytest.fixture(scope="module")
def promoted(stacks):
    """An approval in dev, followed through GitLab's promotion pipeline to staging."""
    source = stacks.register_in_dev()
    (call,) = stacks.calls_for(source)
    variables = pipeline_variables(call)
    deployed = rehearse(
        variables,
        endpoint_url=stacks.emulator.endpoint_url,
        state_dir=stacks.state_dir,
        session=stacks.emulator.session(),
        config={"dev": DEV_CONFIG},
        stacks=["dev", "staging"],  # prod's job waits for a person; prod is not deployed here
    )
    return source, variables, {d.stack: d for d in deployed}


def test_an_approval_in_dev_starts_a_pipeline_deploying_dev_then_staging_then_prod(stacks, promoted):
    source, variables, _ = promoted
    assert variables["MODEL_PACKAGE_ARN"] == source
    assert variables["MODEL_SOURCE_STACK"] == "dev"
    assert deploy_jobs(variables) == ["dev", "staging", "prod"]


def test_dev_serves_its_own_package_and_staging_its_copy(stacks, promoted):
    source, _, deployed = promoted
    assert deployed["dev"].model_package_arn == source
    staging_package = deployed["staging"].model_package_arn
    assert staging_package.startswith(
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/customer-churn-staging/"
    )
    sm = stacks.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=deployed["staging"].result.outputs["endpointName"])
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == staging_package


def test_the_staging_endpoint_answers(stacks, promoted, churn_frame, churn_schema):
    _, _, deployed = promoted
    row = {f.name: churn_frame.iloc[0][f.name] for f in churn_schema.features}
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    answer = stacks.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=deployed["staging"].result.outputs["endpointName"],
        ContentType="application/json",
        Body=json.dumps({"instances": [row]}),
    )
    (prediction,) = json.loads(answer["Body"].read())["predictions"]
    assert 0.0 <= prediction["probability"] <= 1.0


def test_the_staging_package_points_into_stagings_bucket_under_stagings_key(stacks, promoted):
    _, _, deployed = promoted
    package = stacks.client("sagemaker").describe_model_package(
        ModelPackageName=deployed["staging"].model_package_arn
    )
    bucket = stacks.staging["bucket"]
    uris = [
        package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
        package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"],
        package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"],
    ]
    s3 = stacks.client("s3")
    for uri in uris:
        assert uri.startswith(f"s3://{bucket}/pipelines/promoted/dev/"), uri
        head = s3.head_object(Bucket=bucket, Key=uri.split("/", 3)[3])
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == stacks.staging["kmsKeyArn"]
    model = s3.get_object(Bucket=bucket, Key=uris[0].split("/", 3)[3])["Body"].read()
    assert model == stacks.artifact


def test_the_staging_package_carries_metrics_window_lineage_and_its_own_image(stacks, promoted):
    source, _, deployed = promoted
    package = stacks.client("sagemaker").describe_model_package(
        ModelPackageName=deployed["staging"].model_package_arn
    )
    metadata = package["CustomerMetadataProperties"]
    assert metadata["PromotedFrom"] == source
    assert (metadata["PromotedFromStack"], metadata["PromotedFromAccount"]) == ("dev", ACCOUNT)
    assert (metadata["DataStart"], metadata["DataEnd"], metadata["Auc"]) == (
        "2026-01-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "0.9",
    )
    assert package["ModelApprovalStatus"] == "Approved"
    image = package["InferenceSpecification"]["Containers"][0]["Image"]
    assert image == f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-staging@{stacks.digest}"
    found = stacks.client("ecr").describe_images(
        repositoryName="customer-churn-staging", imageIds=[{"imageDigest": stacks.digest}]
    )
    assert found["imageDetails"][0]["imageTags"] == [TAG]


def test_staging_monitoring_finds_its_champion_in_its_own_group(stacks, promoted):
    from model_code.register_info import latest_approved

    _, _, deployed = promoted
    champion = latest_approved("customer-churn-staging", client=stacks.client("sagemaker"))
    assert champion["ModelPackageArn"] == deployed["staging"].model_package_arn


def test_promoting_the_same_package_again_gives_the_same_package(stacks, promoted):
    source, _, deployed = promoted
    before = len(stacks.staging_packages())
    again = promote_mod.promote(source, "staging", session=stacks.emulator.session())
    assert (again.model_package_arn, again.created) == (deployed["staging"].model_package_arn, False)
    assert len(stacks.staging_packages()) == before


def test_a_repeated_approval_event_starts_no_second_promotion(stacks, promoted):
    registry.seed_duplicates(rate=1.0)
    try:
        source = stacks.register_in_dev()
    finally:
        registry.seed_duplicates(rate=0.0)
    calls = stacks.calls_for(source)
    assert len(calls) == 2  # SageMaker sent the approval twice: GitLab starts two pipelines
    before = len(stacks.staging_packages())
    made = set()
    for call in calls:
        variables = pipeline_variables(call)
        made.add(
            promote_mod.promote(
                variables["MODEL_PACKAGE_ARN"], "staging", session=stacks.emulator.session()
            ).model_package_arn
        )
    assert len(made) == 1
    assert len(stacks.staging_packages()) == before + 1


def test_registering_the_promoted_copy_sent_nothing_to_gitlab(stacks, promoted):
    _, _, deployed = promoted
    assert stacks.calls_for(deployed["staging"].model_package_arn) == []


def test_staging_roles_have_no_grant_on_devs_bucket_or_key_but_the_promotion_roles_read(stacks, promoted):
    iam = stacks.client("iam")
    state = State.load(stacks.state_dir / "staging.json", "staging")
    dev_bucket, dev_key = stacks.dev["bucket"], stacks.dev["kmsKeyArn"]
    roles = [r.id for r in state.resources.values() if r.type == "aws:iam/role:Role"]
    assert "customer-churn-staging-promotion" in roles
    for role in roles:
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            for statement in document["Statement"]:
                text = json.dumps(statement)
                assert dev_key not in text and dev_key.rsplit("/", 1)[-1] not in text, (role, statement)
                if role != "customer-churn-staging-promotion":
                    assert dev_bucket not in text, (role, statement)
                elif statement["Action"] == "s3:GetObject" and dev_bucket in text:
                    # The promotion role's one read: objects under dev's model-artifact prefixes.
                    assert statement["Resource"] == [
                        f"arn:aws:s3:::{dev_bucket}/{TRAINING}/models/*",
                        f"arn:aws:s3:::{dev_bucket}/{TRAINING}/*/EvaluateModel/*",
                    ]
                elif dev_bucket in text:
                    # ... and dev's key, known by its alias, only through S3.
                    assert statement["Action"] == "kms:Decrypt"
                    assert statement["Condition"] == {
                        "ForAnyValue:StringEquals": {"kms:ResourceAliases": f"alias/{dev_bucket}"},
                        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
                    }


def test_devs_bucket_and_key_policies_grant_stagings_promotion_role(stacks):
    role = f"arn:aws:iam::{ACCOUNT}:role/customer-churn-staging-promotion"
    bucket_policy = json.loads(stacks.client("s3").get_bucket_policy(Bucket=stacks.dev["bucket"])["Policy"])
    grants = [
        s
        for s in bucket_policy["Statement"]
        if s.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn") == role
    ]
    assert [(g["Effect"], g["Action"]) for g in grants] == [("Allow", "s3:GetObject")]
    kms = stacks.client("kms")
    key_policy = json.loads(kms.get_key_policy(KeyId=stacks.dev["kmsKeyArn"], PolicyName="default")["Policy"])
    grants = [
        s
        for s in key_policy["Statement"]
        if s.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn") == role
    ]
    assert [(g["Action"], g["Condition"]["StringEquals"]["kms:ViaService"]) for g in grants] == [
        ("kms:Decrypt", "s3.eu-west-1.amazonaws.com")
    ]


def test_an_approval_gitlab_refuses_lands_in_the_dead_letter_queue_and_sets_off_the_alarm(stacks):
    # A new project lets no one set pipeline variables: GitLab answers the trigger with 400.
    refuse = {"endpoint": TRIGGER, "status": 400, "body": '{"message":"Insufficient permissions"}'}
    control = f"{stacks.emulator.endpoint_url}/_mlops/api-destinations"
    requests.post(control, json=refuse, timeout=10).raise_for_status()
    try:
        source = stacks.register_in_dev()
    finally:
        requests.post(control, json={**refuse, "status": 200}, timeout=10).raise_for_status()
    sqs = stacks.client("sqs")
    url = sqs.get_queue_url(QueueName="customer-churn-dev-approval-dead-letters")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], MaxNumberOfMessages=10)[
        "Messages"
    ]
    (message,) = [m for m in messages if json.loads(m["Body"])["detail"]["ModelPackageArn"] == source]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "400"
    assert attributes["RULE_ARN"].endswith(":rule/customer-churn-dev-approved")
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "NonRetryable"
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["KmsMasterKeyId"])["Attributes"]
    assert attrs["KmsMasterKeyId"] == stacks.dev["kmsKeyArn"]
    stacks.emulator.behaviours.advance(300)
    alarm = stacks.client("cloudwatch").describe_alarms(
        AlarmNames=["customer-churn-dev-approval-delivery-failed"]
    )
    assert alarm["MetricAlarms"][0]["StateValue"] == "ALARM"


def test_gitlab_refuses_variables_when_the_project_allows_none():
    call = {
        "method": "POST",
        "endpoint": TRIGGER,
        "body": {"variables": {"MODEL_PACKAGE_ARN": "arn", "DEPLOY_STACKS": "dev"}},
    }
    with pytest.raises(TriggerRefused, match="400: Insufficient permissions to set pipeline variables"):
        pipeline_variables(call, variables_allowed=False)


def _cli_as(stacks, monkeypatch, key_id: str = "testing", secret: str = "testing"):
    """``mlops promote`` run in this process reaches the emulator with these credentials (the
    administrator's by default), as a CI job's environment gives them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", stacks.emulator.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)


def test_mlops_promote_prints_the_target_package_last(stacks, promoted, capsys, monkeypatch):
    source, _, deployed = promoted
    _cli_as(stacks, monkeypatch)
    assert promote_mod.main(["--from", source, "--stack", "staging"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == deployed["staging"].model_package_arn
    assert promote_mod.main(["--from", source, "--stack", "staging", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["model_package_arn"], record["source_stack"], record["created"]) == (
        deployed["staging"].model_package_arn,
        "dev",
        False,
    )


def test_mlops_promote_to_the_packages_own_stack_names_it_and_its_image_and_copies_nothing(
    stacks, promoted, capsys, monkeypatch
):
    """dev's deploy job runs ``mlops promote`` too: for dev's own package it is the package itself."""
    source, _, _ = promoted
    _cli_as(stacks, monkeypatch)
    before = len(stacks.staging_packages())
    assert promote_mod.main(["--from", source, "--stack", "dev", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record == {
        "source_package_arn": source,
        "source_stack": "dev",
        "source_account": ACCOUNT,
        "target_stack": "dev",
        "model_package_arn": source,
        "created": False,
        "image": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/customer-churn-dev:{TAG}",
        "artifacts": {},
    }
    assert len(stacks.staging_packages()) == before


def test_the_promotion_role_alone_can_promote_as_the_deploy_job_runs_it(stacks, capsys, monkeypatch):
    """``.ci/deploy`` runs ``mlops promote --role-arn <the stack's promotionRoleArn>``: a caller
    allowed nothing but to assume that role promotes a new package through it."""
    role = stacks.staging["promotionRoleArn"]
    iam = stacks.client("iam")
    iam.create_user(UserName="deploy-job")
    iam.put_user_policy(
        UserName="deploy-job",
        PolicyName="assume-promotion",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role}],
            }
        ),
    )
    key = iam.create_access_key(UserName="deploy-job")["AccessKey"]
    _cli_as(stacks, monkeypatch, key["AccessKeyId"], key["SecretAccessKey"])
    source = stacks.register_in_dev()
    before = len(stacks.staging_packages())

    assert promote_mod.main(["--from", source, "--stack", "staging"]) == 1
    assert "AccessDenied" in capsys.readouterr().err  # the job's own identity may not read dev's package

    assert promote_mod.main(["--from", source, "--stack", "staging", "--role-arn", role, "--json"]) == 0, (
        capsys.readouterr().err
    )
    record = json.loads(capsys.readouterr().out)
    assert record["created"] is True and record["source_package_arn"] == source
    assert len(stacks.staging_packages()) == before + 1


def test_a_copy_without_an_auc_to_judge_waits_for_a_person_in_the_target(
    stacks, promoted, capsys, monkeypatch
):
    _cli_as(stacks, monkeypatch)
    unjudged = stacks.register_in_dev(auc=None)
    assert promote_mod.main(["--from", unjudged, "--stack", "staging"]) == 1
    (copy,) = [
        p
        for p in stacks.staging_packages()
        if p["CustomerMetadataProperties"].get("PromotedFrom") == unjudged
    ]
    assert copy["ModelApprovalStatus"] == "PendingManualApproval"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"mlops promote: {copy['ModelPackageArn']} is PendingManualApproval (the source records no Auc to "
        "hold against staging's minAuc): approve it there, then run mlops promote again"
    )


def test_mlops_promote_to_its_own_stack_refuses_a_package_not_approved(stacks, capsys, monkeypatch):
    _cli_as(stacks, monkeypatch)
    pending = stacks.register_in_dev(approve=False)
    assert promote_mod.main(["--from", pending, "--stack", "dev"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"mlops promote: --from: {pending} is PendingManualApproval, not Approved"
    )


def test_a_job_whose_default_region_is_another_promotes_in_the_stacks_region(stacks, promoted, monkeypatch):
    _cli_as(stacks, monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    source = stacks.register_in_dev()
    before = len(stacks.staging_packages())
    assert promote_mod.main(["--from", source, "--stack", "staging"]) == 0
    assert len(stacks.staging_packages()) == before + 1  # in eu-west-1, staging's region


def test_a_promotion_to_a_stack_not_deployed_yet_names_its_missing_group(
    stacks, promoted, capsys, monkeypatch
):
    """prod's first promotion, before prod's first deploy: its repository holds the build, its
    registry group does not exist yet."""
    _cli_as(stacks, monkeypatch)
    source, _, _ = promoted
    stacks.client("ecr").put_image(repositoryName="customer-churn-prod", imageManifest=MANIFEST, imageTag=TAG)
    assert promote_mod.main(["--from", source, "--stack", "prod"]) == 1
    assert capsys.readouterr().err.strip() == (
        "mlops promote: --stack: the target's model package group customer-churn-prod does not exist "
        "(ValidationException): deploy prod once before promoting to it"
    )


def test_mlops_promote_refuses_a_package_not_approved(stacks, capsys, monkeypatch):
    _cli_as(stacks, monkeypatch)
    pending = stacks.register_in_dev(approve=False)
    assert promote_mod.main(["--from", pending, "--stack", "staging"]) == 1
    assert "is PendingManualApproval, not Approved" in capsys.readouterr().err


def test_mlops_promote_refuses_to_promote_backwards(stacks, promoted, capsys, monkeypatch):
    _, _, deployed = promoted
    _cli_as(stacks, monkeypatch)
    assert promote_mod.main(["--from", deployed["staging"].model_package_arn, "--stack", "dev"]) == 1
    assert "a package of stack 'staging' does not promote to 'dev'" in capsys.readouterr().err


def test_a_model_below_the_targets_quality_bar_is_not_promoted(stacks, promoted, capsys, monkeypatch):
    _cli_as(stacks, monkeypatch)
    weak = stacks.register_in_dev(auc="0.65")  # dev approved it; staging's minAuc is 0.7
    before = len(stacks.staging_packages())
    assert promote_mod.main(["--from", weak, "--stack", "staging"]) == 1
    assert "CustomerMetadataProperties.Auc: 0.65 is below staging's minAuc 0.7" in capsys.readouterr().err
    assert len(stacks.staging_packages()) == before


def test_a_staging_endpoint_given_devs_package_fails_its_health_check_naming_the_denied_read(
    stacks, promoted
):
    """The first-promotion failure of the issue, now caught locally: staging's endpoint role may
    read only staging's image repository, bucket and key, so deploying dev's package there
    (instead of its promoted copy) fails where SageMaker pulls dev's image, naming the action and
    the repository refused (the download of dev's model data would be refused next). As on
    AWS, the failed UpdateEndpoint leaves the endpoint InService on its previous configuration
    with the reason in FailureReason (what `mlops verify` reports after the deploy)."""
    sm = stacks.client("sagemaker")
    (name,) = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"] if "staging" in e["EndpointName"]]
    serving = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    source = stacks.register_in_dev()
    uri = sm.describe_model_package(ModelPackageName=source)["InferenceSpecification"]["Containers"][0][
        "ModelDataUrl"
    ]
    Engine(
        "staging",
        stacks.emulator.endpoint_url,
        state_dir=stacks.state_dir,
        overrides={"mlops-platform:modelPackageArn": source},
    ).up()
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == serving
    # The first read SageMaker makes is the image, from dev's repository: refused.
    reason = endpoint["FailureReason"]
    assert "could not pull the image" in reason
    assert "assumed-role/customer-churn-staging-endpoint/" in reason
    assert (
        "ecr:BatchGetImage on resource: arn:aws:ecr:eu-west-1:123456789012:repository/customer-churn-dev"
        in reason
    )
    # And the model data in dev's bucket would be refused as well.
    with pytest.raises(authorisation.AccessDenied, match="s3:GetObject"):
        authorisation.authorise_model_read(
            f"arn:aws:iam::{ACCOUNT}:role/customer-churn-staging-endpoint", uri, "eu-west-1"
        )
