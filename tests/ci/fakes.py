"""Stand-ins for the tools the .ci/ scripts call, so the scripts run here as they would in CI.

Each is a small executable put first on PATH. They answer as the real tools do where the
scripts depend on it, from AWS's and the tools' documentation:

* ``aws ecr describe-images``: an image's digest, or ``ImageNotFoundException`` (exit 254,
  the CLI's code for a service error) when the tag is not in the repository;
* ``aws ecr describe-image-scan-findings``: the scan's status (basic scanning: IN_PROGRESS,
  COMPLETE, FAILED; enhanced: PENDING, ACTIVE, ...), ``ScanNotFoundException`` before a scan;
* ``aws ecr wait image-scan-complete``: botocore's ImageScanComplete waiter (succeeds on
  COMPLETE only, fails on FAILED, else gives up after its attempts);
* ``buildah push`` to a tag the repository has: ECR refuses it (immutable tags), even for
  the same digest;
* ``pulumi``: ``version`` prints ``v<version>``; ``stack select`` of a stack that does not
  exist exits 6 (the CLI's documented code); ``stack output`` prints the outputs;
* ``.venv`` (``Tools.venv``): pip installs nothing, ``mlops`` exits as the state says.

The state (images per repository, scan answers in order) is a JSON file; every call is
appended to a log, one line per call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_AWS = r"""
import json, os, sys
from tests.ci.fakes import assume_role
assume_role()
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("aws " + " ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
def arg(name):
    return args[args.index(name) + 1]
def fail(code, message, status=254):
    sys.stderr.write(f"\nAn error occurred ({code}) when calling the {message}\n")
    sys.exit(status)
if state.get("denied"):
    fail("AccessDeniedException", "DescribeImages operation: not authorized to perform ecr:DescribeImages")
if args[:2] == ["ecr", "get-login-password"]:
    print("password")
elif args[:2] == ["ecr", "describe-images"]:
    repo, tag = arg("--repository-name"), arg("--image-ids").split("=", 1)[1]
    digest = state["images"].get(repo, {}).get(tag)
    if digest is None:
        fail("ImageNotFoundException", f"DescribeImages operation: The image with imageId {{imageTag:'{tag}'}} does not exist within the repository with name '{repo}'")
    print(digest)
elif args[:2] == ["ecr", "describe-image-scan-findings"]:
    answers = state["scans"]
    answer = answers[0] if len(answers) == 1 else answers.pop(0)
    json.dump(state, open(state_path, "w"))
    if answer["status"] is None:
        fail("ScanNotFoundException", "DescribeImageScanFindings operation: Image scan does not exist")
    if "CRITICAL" in arg("--query"):
        print(answer.get("critical", "None"))
    else:
        print(f"{answer['status']}\t{answer.get('description', 'None')}")
elif args[:3] == ["ecr", "wait", "image-scan-complete"]:
    for answer in state["scans"]:
        if answer["status"] == "COMPLETE":
            sys.exit(0)
        if answer["status"] == "FAILED":
            sys.stderr.write("Waiter ImageScanComplete failed: Waiter encountered a terminal failure state\n")
            sys.exit(255)
    sys.stderr.write("Waiter ImageScanComplete failed: Max attempts exceeded\n")
    sys.exit(255)
else:
    fail("InvalidCommand", f"{' '.join(args[:2])} operation: not faked")
"""

_BUILDAH = r"""
import json, os, sys
state_path = os.environ["FAKE_STATE"]
state = json.load(open(state_path))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("buildah " + " ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
if args[0] == "login":
    sys.stdin.read()
elif args[0] == "push":
    destination = args[-1].removeprefix("docker://")
    repo, tag = destination.split("/", 1)[1].rsplit(":", 1)
    if tag in state["images"].get(repo, {}):
        sys.stderr.write(f"tag invalid: The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the tag is immutable.\n")
        sys.exit(125)
    state["images"].setdefault(repo, {})[tag] = state.get("built", "sha256:" + "b" * 64)
    json.dump(state, open(state_path, "w"))
    open(args[args.index("--digestfile") + 1], "w").write(state["images"][repo][tag])
"""

_PULUMI = r"""
import json, os, sys
from tests.ci.fakes import assume_role
if sys.argv[1:] != ["version"]:
    assume_role()
state = json.load(open(os.environ["FAKE_STATE"]))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("pulumi " + " ".join(sys.argv[1:]) + "\n")
args = [a for a in sys.argv[1:] if a not in ("--json", "--yes", "--diff")]
if "--stack" in args:
    del args[args.index("--stack") : args.index("--stack") + 2]
outputs = state.get("outputs", {})
if args == ["version"]:
    print("v" + os.environ["FAKE_PULUMI_VERSION"])
elif args[:2] == ["stack", "select"] and args[2] not in state.get("stacks", []):
    sys.stderr.write(f"error: no stack named '{args[2]}' found\n")
    sys.exit(6)
elif args[:2] == ["stack", "output"]:
    if len(args) == 2:
        print(json.dumps(outputs))
    elif args[2] in outputs:
        print(outputs[args[2]])
    else:
        sys.stderr.write(f"error: current stack does not have output property '{args[2]}'\n")
        sys.exit(255)
elif args[:1] == ["up"]:
    print("Updating")
    sys.exit(state.get("up_exit", 0))
"""

# The project's virtualenv as .ci/venv leaves it: pip installs nothing here, `mlops` records
# its arguments and exits as told.
_VENV_PYTHON = r"""
import os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("python " + " ".join(sys.argv[1:]) + "\n")
"""

_MLOPS = r"""
import json, os, sys
state = json.load(open(os.environ["FAKE_STATE"]))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("mlops " + " ".join(sys.argv[1:]) + "\n")
sys.exit(state.get("verify_exit", 0))
"""


def assume_role() -> None:
    """What the AWS SDK of a job does first: AssumeRoleWithWebIdentity with the job's token.

    When the state holds the roles' trust policies (``trusts``, role name -> document) and the
    job names a role (``AWS_ROLE_ARN``), the token file must hold the job's ID token, and the
    role's trust must accept the claims GitLab issues this job, read from the job's predefined
    variables as GitLab derives them (tests/infra/bootstrap/gitlab_tokens.py). A refusal ends
    the tool as the AWS CLI does, with STS's error.
    """
    from tests.infra.bootstrap import gitlab_tokens as tokens

    state = json.loads(Path(os.environ["FAKE_STATE"]).read_text())
    role_arn = os.environ.get("AWS_ROLE_ARN")
    if "trusts" not in state or not role_arn:
        return

    def refuse(reason: str) -> None:
        sys.stderr.write(
            "\nAn error occurred (AccessDenied) when calling the AssumeRoleWithWebIdentity operation: "
            f"Not authorized to perform sts:AssumeRoleWithWebIdentity ({reason})\n"
        )
        sys.exit(254)

    token_file = Path(os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent"))
    if not token_file.is_file() or token_file.read_text().strip() != state["id_token"]:
        refuse(f"no ID token in AWS_WEB_IDENTITY_TOKEN_FILE={token_file}")
    tag = os.environ.get("CI_COMMIT_TAG")
    claims = tokens.claims(
        project=os.environ["CI_PROJECT_PATH"],
        ref_type="tag" if tag else "branch",
        ref=tag or os.environ["CI_COMMIT_REF_NAME"],
        protected=os.environ.get("CI_COMMIT_REF_PROTECTED") == "true",
        tier=os.environ.get("CI_ENVIRONMENT_TIER") or None,
    )
    role = role_arn.rsplit("/", 1)[-1]
    trust = state["trusts"].get(role)
    components = tuple(state["sub_claim_components"])
    if trust is None:
        refuse(f"no role {role}")
    if not tokens.may_assume(trust, claims, components):
        refuse(f"{role} does not trust sub {tokens.subject(claims, components)}")


# A tool whose effect does not matter here (the test job's `make test`, the build's `dnf
# install`): it records the call and succeeds.
_RECORDER = r"""
import os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("{name} " + " ".join(sys.argv[1:]) + "\n")
"""


class Tools:
    """A bin directory of fakes, their shared state and the log of calls."""

    def __init__(self, root: Path, state: dict) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.state_path, self.log_path = root / "state.json", root / "calls.log"
        self.state_path.write_text(json.dumps({"images": {}, "scans": [], **state}))
        self.log_path.write_text("")
        for name, code in (
            ("aws", _AWS),
            ("buildah", _BUILDAH),
            ("pulumi", _PULUMI),
            ("make", _RECORDER.format(name="make")),
            ("dnf", _RECORDER.format(name="dnf")),
        ):
            path = self.bin / name
            path.write_text(f"#!{sys.executable}\n{code}")
            path.chmod(0o755)

    def run(self, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
        environment = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FAKE_STATE": str(self.state_path),
            "FAKE_LOG": str(self.log_path),
            # The fakes import the token rules from the tests.
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            **env,
        }
        return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=60)

    def venv(self, checkout: Path) -> None:
        """A ``.venv`` in ``checkout`` whose pip installs nothing and whose ``mlops`` is a fake."""
        bin_dir = checkout / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        for name, code in (("python", _VENV_PYTHON), ("mlops", _MLOPS)):
            (bin_dir / name).write_text(f"#!{sys.executable}\n{code}")
            (bin_dir / name).chmod(0o755)

    @property
    def calls(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    @property
    def state(self) -> dict:
        return json.loads(self.state_path.read_text())
