"""A stack's MLOps maturity level, judged from what its configuration enables.

The three levels the field uses (Google's "MLOps: continuous delivery and automation
pipelines in machine learning"):

1. **manual**: models trained and deployed by hand;
2. **automated development**: a feature store, tracked experiments and CI of the code;
3. **full automation**: CI/CD of deployment, monitoring in production and automatic retraining.

A level is reached when every capability of it and of the levels below is enabled;
:func:`judge` also says what is missing for the next one. Pure: the inputs are the stack's
validated config (``infra.config.PlatformConfig``) and whether the repository has CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEVEL_NAMES = {1: "manual", 2: "automated development", 3: "full automation"}


@dataclass(frozen=True)
class Maturity:
    level: int
    name: str
    enabled: dict[str, bool]
    """Each capability of levels 2 and 3, and whether the stack has it."""
    missing: list[str]
    """What the next level needs that the stack lacks, with the config key to set (empty at 3)."""

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "name": self.name, "enabled": self.enabled, "missing": self.missing}


def capabilities(config: Any, has_ci: bool) -> dict[int, dict[str, tuple[bool, str]]]:
    """Level → capability → (enabled, how to enable it)."""
    return {
        2: {
            # The platform always deploys a feature group (infra.feature_store).
            "feature store": (True, ""),
            "tracked experiments": (bool(config.mlflow_enabled), "set mlflowEnabled: true"),
            "CI": (has_ci, "add .gitlab-ci.yml (the project's CI pipeline)"),
        },
        3: {
            "CI/CD of deployment": (
                config.gitlab_trigger_url is not None,
                "set gitlabTriggerUrl so an approved model is deployed by CI",
            ),
            "monitoring": (
                bool(config.drift_monitoring and config.monitoring_schedule_enabled),
                "set driftMonitoring: true and monitoringScheduleEnabled: true",
            ),
            "automatic retraining": (
                bool(config.retrain_schedule_enabled or config.drift_monitoring),
                "set retrainScheduleEnabled: true (or driftMonitoring: true for drift triggers)",
            ),
        },
    }


def judge(config: Any, has_ci: bool) -> Maturity:
    levels = capabilities(config, has_ci)
    level = 1
    for candidate in (2, 3):
        if all(ok for ok, _ in levels[candidate].values()):
            level = candidate
        else:
            break
    missing = []
    if level < 3:
        missing = [f"{name}: {how}" for name, (ok, how) in levels[level + 1].items() if not ok]
    enabled = {name: ok for caps in levels.values() for name, (ok, _) in caps.items()}
    return Maturity(level, LEVEL_NAMES[level], enabled, missing)
