"""`mlops cost`: each committed stack's always-on estimate, from its own config and the dated table."""

from __future__ import annotations

import pytest
import yaml

from mlops import cost
from mlops.cli import main as mlops


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_cost_prints_each_stack_with_the_dated_price_table(stack, capsys):
    assert mlops(["cost", "--stack", stack]) == 0
    out = capsys.readouterr().out
    assert f"Stack {stack}" in out and "total" in out
    assert f"dated {yaml.safe_load(cost.PRICES.read_text())['date']}" in out


def test_dev_always_on_cost_stays_within_two_dollars_a_day_with_a_model_deployed():
    _, _, lines = cost.stack_estimate("dev", with_model=True)
    assert sum(line.monthly for line in lines) / 30.4 <= 2.0


def test_prod_pays_for_its_instances_and_mlflow():
    config, prices, lines = cost.stack_estimate("prod", with_model=True)
    by_item = {line.item: line.monthly for line in lines}
    hourly = prices["sagemaker_hosting_per_hour"][config.instance_type]
    assert by_item["endpoint instances"] == pytest.approx(config.min_capacity * hourly * 730)
    assert by_item["MLflow tracking server"] > 0


def test_a_stack_without_a_model_pays_no_endpoint():
    _, _, lines = cost.stack_estimate("dev")
    assert {line.item: line.monthly for line in lines}["endpoint"] == 0


def test_paused_schedules_cost_nothing():
    _, _, lines = cost.stack_estimate("dev")
    assert not any("scheduled" in line.item for line in lines)


def test_unknown_stack_is_named(capsys):
    with pytest.raises(SystemExit) as exit_:
        mlops(["cost", "--stack", "qa"])
    assert exit_.value.code == 2
    assert "no Pulumi.qa.yaml; stacks: dev, local, prod, staging" in capsys.readouterr().err


def test_runs_per_month_of_rate_expressions():
    assert cost.runs_per_month("rate(1 hour)") == 730
    assert cost.runs_per_month("rate(7 days)") == pytest.approx(730 / 24 / 7)
