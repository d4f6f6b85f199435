"""``.ci/scan``: the gate on ECR's scan, under basic and enhanced (Inspector) scanning.

With a fake ``aws`` (tests/ci/fakes.py) answering the statuses ECR documents for
DescribeImageScanFindings: basic scanning IN_PROGRESS then COMPLETE (or FAILED); enhanced
scanning PENDING then ACTIVE, which botocore's ImageScanComplete waiter never accepts.
"""

from __future__ import annotations

from tests.ci.fakes import Tools
from tests.test_gitlab_ci import ROOT


def scan(tmp_path, answers: list[dict], **env: str):
    tools = Tools(tmp_path, {"scans": answers})
    env = {"SCAN_POLL_SECONDS": "0.05", **env}
    return tools.run([str(ROOT / ".ci" / "scan"), "customer-churn-dev", "abc123"], cwd=tmp_path, **env)


def test_enhanced_scanning_passes_once_active_without_critical_findings(tmp_path):
    result = scan(
        tmp_path, [{"status": None}, {"status": "PENDING"}, {"status": "ACTIVE", "critical": "None"}]
    )
    assert result.returncode == 0, result.stderr
    assert "no critical findings (ACTIVE scan)" in result.stdout


def test_enhanced_scanning_blocks_on_a_critical_finding(tmp_path):
    result = scan(tmp_path, [{"status": "ACTIVE", "critical": "3"}])
    assert result.returncode == 1
    assert "has 3 critical finding(s) (ACTIVE scan): promotion blocked" in result.stderr


def test_basic_scanning_waits_for_complete(tmp_path):
    result = scan(
        tmp_path,
        [{"status": "IN_PROGRESS"}, {"status": "IN_PROGRESS"}, {"status": "COMPLETE", "critical": "0"}],
    )
    assert result.returncode == 0, result.stderr
    assert "no critical findings (COMPLETE scan)" in result.stdout


def test_a_scan_that_does_not_finish_fails_in_time_naming_its_status(tmp_path):
    result = scan(tmp_path, [{"status": "IN_PROGRESS"}], SCAN_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert "scan not finished after 1 s (last status: IN_PROGRESS)" in result.stderr


def test_a_failed_or_unsupported_scan_fails_naming_the_reason(tmp_path):
    result = scan(
        tmp_path, [{"status": "UNSUPPORTED_IMAGE", "description": "The operating system is not supported"}]
    )
    assert result.returncode == 1
    assert "scan status UNSUPPORTED_IMAGE (The operating system is not supported)" in result.stderr
