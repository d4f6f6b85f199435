"""The training pipeline's definition: its DAG, parameters and requests, built with no network.

The definition is what SageMaker (and the local executor) run, so the tests read the JSON,
never the SDK objects that built it. It is built once per module (a build takes seconds);
the command line's build is the second one the byte-for-byte comparison needs.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from mlops import cli
from model_code.contract import schema as schema_mod
from pipelines import common, training
from tests.pipelines.definitions import gets, offline

EXPECTED_TYPES = {
    "EngineerFeatures": "Processing",
    "TrainModel": "Training",
    "EvaluateModel": "Processing",
    "CheckQuality": "Condition",
    "RegisterModel": "RegisterModel",
    "FailPipeline": "Fail",
}
NAME = "customer-churn-training"
KEY = "arn:aws:kms:us-east-1:111111111111:key/0000"
# The SDK says a PipelineSession starts no job: true, and what this module relies on.
pytestmark = pytest.mark.filterwarnings("ignore:Running within a PipelineSession")
# What each step reads from the steps before it: the DAG the definition's references imply.
EXPECTED_UPSTREAM = {
    "EngineerFeatures": set(),
    "TrainModel": {"EngineerFeatures"},
    "EvaluateModel": {"EngineerFeatures", "TrainModel"},
    "CheckQuality": {"EvaluateModel"},
    "RegisterModel": {"EngineerFeatures", "TrainModel", "EvaluateModel"},
    "FailPipeline": {"EvaluateModel"},
}
# Request shapes by step type, and the job name the SDK leaves for SageMaker to fill in.
REQUESTS = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "job"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "job"}),
    "RegisterModel": ("CreateModelPackage", {}),
}


@pytest.fixture(scope="module")
def text() -> str:
    """The definition for the example schema and the placeholders, as the SDK writes it."""
    with offline():
        return training.get_pipeline(
            region=common.DEFAULT_REGION,
            role_arn=common.PLACEHOLDER_ROLE,
            bucket=common.PLACEHOLDER_BUCKET,
            schema=schema_mod.load(),
        ).definition()


@pytest.fixture(scope="module")
def printed() -> str:
    """What ``mlops pipeline definition --pipeline training --compact`` prints."""
    out = io.StringIO()
    with offline(), contextlib.redirect_stdout(out):
        assert cli.main(["pipeline", "definition", "--pipeline", "training", "--compact"]) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def definition(text) -> dict:
    return json.loads(text)


def all_steps(steps: list[dict]) -> Iterator[dict]:
    """Every step, those inside condition branches included."""
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from all_steps(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])


@pytest.fixture(scope="module")
def steps(definition) -> dict[str, dict]:
    return {s["Name"]: s for s in all_steps(definition["Steps"])}


def own_arguments(step: dict) -> dict:
    """A step's arguments without the steps nested in it (a condition's branches)."""
    args = dict(step["Arguments"])
    args.pop("IfSteps", None)
    args.pop("ElseSteps", None)
    return args


def upstream(step: dict) -> set[str]:
    return {ref.split(".")[1] for ref in gets(own_arguments(step)) if ref.startswith("Steps.")}


def substitute(value: Any, defaults: dict[str, Any]) -> Any:
    """Pipeline variables replaced as SageMaker would at run time: parameters by their defaults,
    everything else (step properties, joins, JSON lookups) by a string."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and value["Get"].startswith("Parameters."):
            return defaults[value["Get"].removeprefix("Parameters.")]
        if len(value) == 1 and next(iter(value)) in ("Get", "Std:Join", "Std:JsonGet"):
            return "s3://bucket/resolved-at-run-time"
        return {k: substitute(v, defaults) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, defaults) for v in value]
    return value


@pytest.fixture(scope="module")
def defaults(definition) -> dict[str, Any]:
    return {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}


def test_building_twice_gives_byte_identical_json(text, printed):
    assert printed.rstrip("\n") == text


def test_the_command_prints_the_definition_with_every_step(definition, printed):
    names = {s["Name"] for s in all_steps(json.loads(printed)["Steps"])}
    assert names == set(EXPECTED_TYPES)


def test_each_step_has_its_name_and_type(steps):
    assert {name: step["Type"] for name, step in steps.items()} == EXPECTED_TYPES


def test_the_top_level_runs_the_steps_in_dag_order(definition):
    names = [s["Name"] for s in definition["Steps"]]
    assert names == ["EngineerFeatures", "TrainModel", "EvaluateModel", "CheckQuality"]


@pytest.mark.parametrize("name", list(EXPECTED_UPSTREAM))
def test_each_step_reads_from_the_steps_before_it(steps, name):
    assert upstream(steps[name]) == EXPECTED_UPSTREAM[name]


def test_every_step_reference_names_an_existing_step_and_property_file(definition, steps):
    property_files = {
        f"Steps.{name}.PropertyFiles.{f['PropertyFileName']}"
        for name, step in steps.items()
        for f in step.get("PropertyFiles", [])
    }
    refs = [r for r in gets(definition["Steps"]) if r.startswith("Steps.")]
    assert refs
    for ref in refs:
        assert ref.split(".")[1] in steps, ref
        if ".PropertyFiles." in ref:
            assert ref in property_files


def test_every_parameter_reference_is_declared_and_every_parameter_used(definition):
    declared = {p["Name"] for p in definition["Parameters"]}
    used = {r.removeprefix("Parameters.") for r in gets(definition["Steps"]) if r.startswith("Parameters.")}
    assert used == declared


def test_parameters_have_the_documented_names_types_and_defaults(definition):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert tuple(params) == training.PARAMETER_NAMES
    assert params["FeatureGroupName"]["DefaultValue"] == "customer-churn"
    for name, default in training.DEFAULTS.items():
        assert params[name]["DefaultValue"] == default
    types = {name: p["Type"] for name, p in params.items()}
    assert types["WindowDays"] == types["OfflineStoreWaitSeconds"] == "Integer"
    assert types["MinAuc"] == types["MaxRegression"] == types["TestShare"] == "Float"
    assert (params["TrainingStrategy"]["DefaultValue"], params["TriggerReason"]["DefaultValue"]) == (
        "new-data-only",
        "manual",
    )


@pytest.mark.parametrize("name", ["TrainingStrategy", "TriggerReason", "ModelApprovalStatus"])
def test_parameters_with_allowed_values_declare_them(definition, name):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params[name]["EnumValues"] == list(training.ALLOWED_VALUES[name])


def test_the_quality_gate_registers_on_pass_and_fails_otherwise(steps):
    gate = steps["CheckQuality"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["FailPipeline"]
    (condition,) = gate["Conditions"]
    assert condition["Type"] == "Equals" and condition["RightValue"] is True
    assert condition["LeftValue"]["Std:JsonGet"] == {
        "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.Evaluation"},
        "Path": "decision.passed",
    }


def test_the_failure_message_names_the_metric_that_failed(steps):
    message = steps["FailPipeline"]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    paths = [v["Std:JsonGet"]["Path"] for v in message if isinstance(v, dict)]
    assert paths == ["decision.failed_metric", "decision.reason"]


def test_evaluation_json_is_the_evaluate_steps_property_file(steps):
    assert steps["EvaluateModel"]["PropertyFiles"] == [
        {"PropertyFileName": "Evaluation", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


@pytest.mark.parametrize("name", ["EngineerFeatures", "EvaluateModel"])
def test_processing_steps_get_every_container_path_as_an_argument(steps, name):
    args = steps[name]["Arguments"]
    paths = [i["S3Input"]["LocalPath"] for i in args["ProcessingInputs"]]
    paths += [o["S3Output"]["LocalPath"] for o in args["ProcessingOutputConfig"]["Outputs"]]
    assert all(p.startswith("/opt/ml/processing/") for p in paths)
    assert set(paths) <= {a for a in args["AppSpecification"]["ContainerArguments"] if isinstance(a, str)}


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("EngineerFeatures", "model_code.training.prepare"),
        ("EvaluateModel", "model_code.training.evaluate"),
    ],
)
def test_processing_steps_run_their_module_in_the_project_image(steps, name, module):
    app = steps[name]["Arguments"]["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python", "-m", module]
    assert app["ImageUri"] == common.placeholder_image(common.DEFAULT_REGION)


@pytest.mark.parametrize("name", ["EngineerFeatures", "EvaluateModel"])
def test_processing_steps_get_the_region_their_boto3_calls_need(steps, name):
    # SageMaker gives a processing container no region; its registry and S3 calls need one.
    assert steps[name]["Arguments"]["Environment"]["AWS_DEFAULT_REGION"] == common.DEFAULT_REGION


def test_feature_engineering_reads_the_feature_groups_offline_store_and_waits_within_the_bound(steps):
    args = steps["EngineerFeatures"]["Arguments"]
    # Only the contract is mounted: the step reads the offline store itself, again while it waits.
    assert [i["InputName"] for i in args["ProcessingInputs"]] == ["schema"]
    flags = args["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(flags[::2], flags[1::2], strict=True))
    assert flags["--feature-group"] == {"Get": "Parameters.FeatureGroupName"}
    assert flags["--wait-seconds"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.OfflineStoreWaitSeconds"}]}
    }
    assert (
        flags["--ingestion-reports"]
        == f"s3://{common.PLACEHOLDER_BUCKET}/pipelines/customer-churn-ingestion/"
    )


@pytest.mark.parametrize("name", ["EngineerFeatures", "EvaluateModel"])
def test_outputs_go_under_the_executions_own_prefix(steps, name):
    for output in steps[name]["Arguments"]["ProcessingOutputConfig"]["Outputs"]:
        assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"] == [
            f"s3://{common.PLACEHOLDER_BUCKET}/pipelines/{NAME}",
            {"Get": "Execution.PipelineExecutionId"},
            name,
            output["OutputName"],
        ]


def test_the_schema_reaches_the_containers_as_its_content_addressed_object(steps):
    uri = training.schema_object(schema_mod.load()).uri(common.PLACEHOLDER_BUCKET)
    for name in ("EngineerFeatures",):
        inputs = {i["InputName"]: i["S3Input"] for i in steps[name]["Arguments"]["ProcessingInputs"]}
        assert inputs["schema"]["S3Uri"] == uri


def test_a_changed_schema_is_a_new_schema_object():
    raw = schema_mod.load().to_dict()
    changed = schema_mod.parse({**raw, "features": raw["features"][:-1]})
    assert training.schema_object(changed).key != training.schema_object(schema_mod.load()).key
    assert schema_mod.parse(__import__("yaml").safe_load(training.schema_object(changed).body)) == changed


def test_feature_engineering_passes_the_strategy_window_and_group(steps):
    args = steps["EngineerFeatures"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags["--strategy"] == {"Get": "Parameters.TrainingStrategy"}
    assert flags["--window-days"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.WindowDays"}]}}
    assert flags["--test-share"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.TestShare"}]}}
    assert flags["--model-package-group"] == "customer-churn"


def test_training_tags_its_tracked_run_with_the_execution_and_trigger(steps):
    env = steps["TrainModel"]["Arguments"]["Environment"]
    assert env["MLOPS_TRIGGER_REASON"] == {"Get": "Parameters.TriggerReason"}
    assert env["MLOPS_EXECUTION_ID"] == {"Get": "Execution.PipelineExecutionId"}


def test_training_uses_the_image_the_instance_parameter_and_a_fixed_model_prefix(steps):
    args = steps["TrainModel"]["Arguments"]
    assert args["AlgorithmSpecification"]["TrainingImage"] == common.placeholder_image(common.DEFAULT_REGION)
    assert args["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert (
        args["OutputDataConfig"]["S3OutputPath"]
        == f"s3://{common.PLACEHOLDER_BUCKET}/pipelines/{NAME}/models"
    )
    assert args["HyperParameters"] == {k: str(v) for k, v in training.DEFAULT_HYPERPARAMETERS.items()}


def test_evaluation_reads_the_trained_model_and_both_splits(steps):
    inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"]["Get"]
        for i in steps["EvaluateModel"]["Arguments"]["ProcessingInputs"]
    }
    assert inputs == {
        "model": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts",
        "test": "Steps.EngineerFeatures.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri",
        "train": "Steps.EngineerFeatures.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri",
    }


def test_registration_records_the_model_its_metrics_and_its_drift_baseline(steps):
    args = steps["RegisterModel"]["Arguments"]
    (container,) = args["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert args["ModelPackageGroupName"] == "customer-churn"

    def file(source: dict) -> list:
        return source["S3Uri"]["Std:Join"]["Values"]

    assert file(args["ModelMetrics"]["ModelQuality"]["Statistics"]) == [
        {"Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
        "evaluation.json",
    ]
    baseline = [
        {"Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"},
        "baseline.json",
    ]
    assert file(args["ModelMetrics"]["ModelDataQuality"]["Statistics"]) == baseline
    assert file(args["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]) == baseline


def test_registration_carries_the_run_in_its_customer_metadata(steps):
    metadata = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    assert metadata["TriggerReason"] == {"Get": "Parameters.TriggerReason"}
    assert metadata["TrainingStrategy"] == {"Get": "Parameters.TrainingStrategy"}
    assert metadata["ExecutionId"] == {"Get": "Execution.PipelineExecutionId"}
    assert metadata["DataEnd"]["Std:JsonGet"] == {
        "PropertyFile": {"Get": "Steps.EngineerFeatures.PropertyFiles.DataWindow"},
        "Path": "data_end",
    }


def test_registration_carries_both_aucs_on_the_same_rows_and_the_chosen_model(steps):
    metadata = steps["RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    for key in ("Auc", "ChampionAuc", "ChampionStoredAuc", "ModelType", "CvAuc"):
        assert metadata[key]["Std:JsonGet"] == {
            "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.Evaluation"},
            "Path": f"registry.{key}",
        }


def test_training_chooses_its_model_by_cross_validation_by_default(steps):
    assert steps["TrainModel"]["Arguments"]["HyperParameters"]["model-type"] == "auto"


@pytest.mark.parametrize("name", ["EngineerFeatures", "TrainModel", "EvaluateModel", "RegisterModel"])
def test_each_request_is_valid_for_its_sagemaker_api(steps, defaults, name):
    step = steps[name]
    operation, job_name = REQUESTS[step["Type"]]
    shape = (
        botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    )
    request = {**job_name, **substitute(step["Arguments"], defaults)}
    try:
        validate_parameters(request, shape)
    except ParamValidationError as exc:
        pytest.fail(f"{name}: not a valid {operation} request: {exc}")


def test_check_parameters_accepts_the_defaults_and_their_text():
    training.check_parameters({**training.DEFAULTS, "FeatureGroupName": "customer-churn-dev"})
    training.check_parameters({k: str(v) for k, v in training.DEFAULTS.items()})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"TrainingStrategy": "everything"},
            "TrainingStrategy: 'everything' is not one of new-data-only | combined",
        ),
        ({"TriggerReason": "whim"}, "TriggerReason: 'whim' is not one of manual | schedule"),
        ({"WindowDays": 0}, "WindowDays: expected an integer >= 1, got 0"),
        ({"WindowDays": "7.5"}, "WindowDays: expected an integer >= 1, got '7.5'"),
        ({"TestShare": 1.0}, "TestShare: expected a number between 0 and 1 (exclusive), got 1.0"),
        ({"MinAuc": "high"}, "MinAuc: expected a number between 0 and 1, got 'high'"),
        ({"FeatureGroupName": "s3://b/raw/"}, "FeatureGroupName: expected a feature group name"),
        (
            {"OfflineStoreWaitSeconds": -1},
            "OfflineStoreWaitSeconds: expected an integer >= 0 (seconds), got -1",
        ),
        ({"Epochs": 3}, "Epochs: unknown parameter; expected one of FeatureGroupName"),
    ],
)
def test_check_parameters_names_the_bad_key_and_what_it_accepts(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        training.check_parameters(values)


def test_the_command_says_which_pipeline_builder_is_missing(monkeypatch, capsys):
    from pipelines import cli as pipeline_cli

    monkeypatch.setitem(pipeline_cli.PIPELINES, "nowhere", "pipelines.nowhere")
    assert cli.main(["pipeline", "definition", "--pipeline", "nowhere"]) == 2
    assert "pipelines.nowhere is not available" in capsys.readouterr().err


@pytest.fixture(scope="module")
def custom() -> dict[str, dict]:
    """A build for another schema, with a key, an image, a group, a tracker and a model type."""
    schema = schema_mod.parse({**schema_mod.load().to_dict(), "name": "fraud-risk"})
    with offline():
        text = training.get_pipeline(
            region="us-east-1",
            role_arn=common.PLACEHOLDER_ROLE,
            bucket="stack-bucket",
            schema=schema,
            image_uri="111111111111.dkr.ecr.us-east-1.amazonaws.com/mlops:abc",
            kms_key_arn=KEY,
            model_package_group="fraud-models",
            # Name-value pairs, as the stack gives them (its definitions are cached on their inputs).
            hyperparameters=(("model-type", "logistic"), ("search", "quick")),
            tracking_uri="arn:aws:sagemaker:us-east-1:111111111111:mlflow-tracking-server/mlops",
        ).definition()
    return {s["Name"]: s for s in all_steps(json.loads(text)["Steps"])}


@pytest.mark.parametrize("name", ["EngineerFeatures", "EvaluateModel"])
def test_a_key_encrypts_processing_volumes_and_outputs(custom, name):
    args = custom[name]["Arguments"]
    assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
    assert args["ProcessingOutputConfig"]["KmsKeyId"] == KEY


def test_a_key_encrypts_the_training_volume_and_model(custom):
    args = custom["TrainModel"]["Arguments"]
    assert args["ResourceConfig"]["VolumeKmsKeyId"] == KEY
    assert args["OutputDataConfig"]["KmsKeyId"] == KEY


def test_names_and_the_group_follow_the_schema_and_the_arguments(custom):
    outputs = custom["EngineerFeatures"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert (
        outputs[0]["S3Output"]["S3Uri"]["Std:Join"]["Values"][0]
        == "s3://stack-bucket/pipelines/fraud-risk-training"
    )
    assert custom["RegisterModel"]["Arguments"]["ModelPackageGroupName"] == "fraud-models"
    for name in ("EngineerFeatures", "EvaluateModel"):
        args = custom[name]["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[args.index("--model-package-group") + 1] == "fraud-models"


def test_the_image_runs_every_job_and_serves_the_model(custom):
    image = "111111111111.dkr.ecr.us-east-1.amazonaws.com/mlops:abc"
    assert custom["TrainModel"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"] == image
    assert custom["EvaluateModel"]["Arguments"]["AppSpecification"]["ImageUri"] == image
    assert custom["RegisterModel"]["Arguments"]["InferenceSpecification"]["Containers"][0]["Image"] == image


def test_hyperparameters_and_the_tracker_reach_the_training_job(custom):
    args = custom["TrainModel"]["Arguments"]
    assert args["HyperParameters"]["model-type"] == "logistic"
    assert args["HyperParameters"]["search"] == "quick"
    assert args["HyperParameters"]["selection"] == "none"
    assert args["Environment"]["MLFLOW_TRACKING_URI"].endswith("mlflow-tracking-server/mlops")
