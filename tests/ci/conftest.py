"""The CI tests' marker: ``rehearsal`` runs GitLab's pipelines end to end (``make ci-rehearsal``)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "rehearsal: runs the GitLab pipelines end to end with gitlab-ci-local (make ci-rehearsal)"
    )
