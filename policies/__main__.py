"""The policy pack's entry point, run by the Pulumi CLI (`pulumi up --policy-pack policies`).

The policies themselves live in ``policies.invariants`` so the local engine and the tests run
the very same validation functions in-process; constructing ``PolicyPack`` here starts the
analyzer's gRPC server the CLI talks to, so nothing else may import this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this file from policies/ with the project's virtualenv; the repository root makes
# `policies.invariants` importable whether or not the project is installed in that virtualenv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.invariants import PACK_NAME, POLICIES

PolicyPack(PACK_NAME, policies=list(POLICIES), enforcement_level=EnforcementLevel.MANDATORY)
