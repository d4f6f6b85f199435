"""The engine: run a Pulumi program (infra/, or another project such as infra/bootstrap) as Pulumi does,
with each resource really made in the emulator.

The program runs under the SDK's mock runtime exactly as ``pulumi-language-python-exec``
runs it (working directory the repository root, config from ``Pulumi.<stack>.yaml`` set
with ``set_all_config`` and secrets marked, the project and stack names). The mocks'
``new_resource`` is where a deploy happens: the recorded state decides the operation, and
the type's translation makes the AWS requests. Pulumi runs independent registrations on
a thread pool, so independent resources are created concurrently, as the real engine does.

Deletes come after the program: resources it no longer declares, and the old halves of
replacements, newest first (the registration order puts dependencies first). A failure
stops further writes, keeps what was done in the state and is raised naming the resource.
"""

from __future__ import annotations

import itertools
import logging
import os
import runpy
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import UNKNOWN
from pulumi.runtime.settings import get_root_resource

from localcloud import options, secrets
from localcloud.clients import CALLS, client
from localcloud.state import Operation, ResourceState, Result, State, decide, normalize
from localcloud.translations import lookup
from localcloud.translations.base import DeployError, Request, auto_name

ROOT = Path(__file__).resolve().parents[1]
_current = threading.local()


def project_program(project: Path) -> tuple[str, Path]:
    """A Pulumi project's name and the program file its ``Pulumi.yaml`` names (``main``)."""
    settings = yaml.safe_load((project / "Pulumi.yaml").read_text())
    main = project / settings.get("main", ".")
    return settings["name"], main / "__main__.py" if main.is_dir() else main


def stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise DeployError(f"--stack {stack}: no {path.name} in {root}")
    return yaml.safe_load(path.read_text()).get("config", {}) or {}


def engine_config(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The config as the engine hands it to a program: strings, structured values as JSON."""
    import json

    values, secrets = {}, []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise DeployError(f"{key}: an encrypted secret cannot be read without the Pulumi CLI; use --set")
        values[key] = value if isinstance(value, str) else json.dumps(value)
        if key.endswith(("Token", "Password", "Secret")):
            secrets.append(key)
    return values, secrets


def _without_assets(outputs: dict[str, Any]) -> dict[str, Any]:
    # The SDK types asset properties; their recorded form (paths and digests) is not one.
    # No program reads an asset back, so outputs leave them out.
    return {
        k: v
        for k, v in outputs.items()
        if not (isinstance(v, dict) and v.get("kind") in ("file", "string", "archive"))
    }


class _QuietFailedRegistrations(logging.Filter):
    """asyncio also logs each failed registration's future when it is collected; the deploy
    raises the failure once, naming the resource, so those repeats are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = getattr(record, "msg", "")
        return not (
            isinstance(context, str)
            and context.startswith("Future exception was never retrieved")
            and record.exc_info
            and isinstance(record.exc_info[1], DeployError)
        )


logging.getLogger("asyncio").addFilter(_QuietFailedRegistrations())


class _Monitor(MockMonitor):
    """The SDK's mock monitor, telling the mocks which URN and dependencies they register."""

    def RegisterResource(self, request):
        _current.urn = self.make_urn(request.parent, request.type, request.name)
        _current.dependencies = sorted(set(request.dependencies))
        _current.retain_on_delete = request.retainOnDelete
        _current.delete_before_replace = request.deleteBeforeReplace
        _current.refused_options = options.refused(request)
        _current.type_aliases = options.type_aliases(request)
        _current.secret_outputs = set(request.additionalSecretOutputs)
        return super().RegisterResource(request)


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, engine: Engine):
        self.engine = engine

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return self.engine._register(args)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return self.engine._invoke(args.token)


class Engine:
    """Deploys one stack into the emulator at ``endpoint_url``; ``up()``, ``destroy()``."""

    def __init__(
        self,
        stack: str,
        endpoint_url: str,
        *,
        state_dir: Path | None = None,
        overrides: dict[str, Any] | None = None,
        root: Path = ROOT,
        fresh_state: bool = False,
    ):
        """``root`` is the Pulumi project: the repository (the platform's program, infra/) or
        another project's folder, such as infra/bootstrap."""
        self.stack = stack
        self.endpoint_url = endpoint_url
        self.root = root
        self.project, self.program = project_program(root)
        # A new embedded emulator holds nothing: the state recorded against another is void.
        self.fresh_state = fresh_state
        self.state_path = (state_dir or root / ".state") / f"{stack}.json"
        self.config = {**stack_config(stack, root), **(overrides or {})}
        self.region = self.config.get("aws:region", "eu-west-1")
        # secure: config and secret values, kept out of the state (localcloud/secrets.py).
        self._secrets = secrets.SecretKeeper(secrets.stack_crypter(root, stack, lambda: self.client("kms")))
        self._lock = threading.Lock()
        self.calls: Counter = Counter()

    # -- AWS clients: strict, counted, no retries (a retried write would hide a failure) ----
    def client(self, service: str):
        return client(self.endpoint_url, self.region, service)

    def _request(self, type_: str, name: str) -> Request:
        return Request(self.client, name, type_, self.region, self._account)

    # -- the two commands ---------------------------------------------------------------------
    def up(self, *, preview: bool = False) -> Result:
        started = time.perf_counter()
        self._start(preview)
        try:
            outputs = self._run_program()
            if self._failure is None:
                self._delete_leftovers()
        finally:
            if not preview:
                self._save(outputs if self._failure is None else self._old.outputs)
        if self._failure is not None:
            raise self._failure
        return self._result(outputs, started)

    def destroy(self, *, preview: bool = False) -> Result:
        started = time.perf_counter()
        self._start(preview)
        self._registered = {}
        try:
            self._delete_leftovers()
        finally:
            if not preview:
                self._save({})
        if self._failure is not None:
            raise self._failure
        return self._result({}, started)

    # -- internals ------------------------------------------------------------------------------
    def _result(self, outputs: dict[str, Any], started: float) -> Result:
        self.calls = CALLS - self._calls_before
        return Result(
            self.stack, self._operations, outputs, self.calls, time.perf_counter() - started, self.preview
        )

    def _start(self, preview: bool) -> None:
        self.preview = preview
        self._calls_before = CALLS.copy()
        self._old = State(self.stack) if self.fresh_state else State.load(self.state_path, self.stack)
        self._registered: dict[str, ResourceState] = {}
        self._replaced: list[ResourceState] = []
        self._deleted: set[str] = set()
        self._operations: list[Operation] = []
        self._failure: Exception | None = None
        self._seq = itertools.count(1)
        self._account = self.client("sts").get_caller_identity()["Account"]

    def _run_program(self) -> dict[str, Any]:
        mocks = _Mocks(self)
        pulumi.runtime.set_mocks(
            mocks, project=self.project, stack=self.stack, preview=self.preview, monitor=_Monitor(mocks)
        )
        try:
            plain, secure = self._secrets.config(self.config)
        except secrets.SecretsError as exc:  # before any resource: the state stays as it was
            self._failure = exc
            return {}
        values, secret_keys = engine_config(plain)
        pulumi.runtime.set_all_config(values, sorted({*secret_keys, *secure}))
        # The sagemaker SDK needs a region when it is imported by the pipeline builders.
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)
        # Nothing in a local deploy may look for AWS credentials on the network.
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        captured: dict[str, Any] = {}
        secret_keys: list[str] = []

        @pulumi.runtime.test
        def program():
            runpy.run_path(str(self.program), run_name="__main__")
            exports = get_root_resource().outputs
            return pulumi.Output.all(
                pulumi.Output.from_input(exports).apply(captured.update),
                secrets.secret_exports(exports).apply(secret_keys.extend),
            )

        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            program()
        except Exception as exc:
            if self._failure is None:
                self._failure = exc
        finally:
            os.chdir(cwd)
        # Secret exports are kept and printed sealed, as `pulumi stack output` shows them.
        return self._secrets.seal(captured, {(key,) for key in secret_keys}, self._old.outputs)

    def _invoke(self, token: str) -> dict[str, Any]:
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            identity = self.client("sts").get_caller_identity()
            return {
                "accountId": identity["Account"],
                "arn": identity["Arn"],
                "userId": identity["UserId"],
                "id": identity["Account"],
            }
        if token == "aws:index/getRegion:getRegion":
            return {
                "name": self.region,
                "region": self.region,
                "id": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com",
            }
        if token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
                "reverseDnsPrefix": "com.amazonaws",
            }
        raise DeployError(f"data source {token}: no translation in the local cloud")

    def _register(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if not args.custom and not _current.refused_options:
            return "", {}  # a component: nothing in AWS
        urn, seq = _current.urn, next(self._seq)
        try:
            if _current.refused_options:
                raise DeployError(options.message(args.name, args.typ, _current.refused_options))
            if aliased := options.aliased_in_state(
                args.name, _current.type_aliases, self._old.resources.values()
            ):
                raise DeployError(
                    options.message(args.name, args.typ, [f"aliases (of {', '.join(aliased)})"])
                )
            if self._failure is not None:
                raise DeployError(f"{args.name} ({args.typ}): not attempted, an earlier resource failed")
            return self._apply(args, urn, seq)
        except Exception as exc:
            with self._lock:
                if self._failure is None:
                    self._failure = (
                        exc
                        if isinstance(exc, DeployError)
                        else DeployError(f"{args.name} ({args.typ}): {exc}")
                    )
            raise

    def _apply(self, args, urn: str, seq: int) -> tuple[str, dict[str, Any]]:
        translation = lookup(args.typ)
        old = self._old.resources.get(urn)
        # Secret inputs go to AWS in clear, and to the state and the diff sealed.
        inputs, sealed, secret_paths = self._secrets.split(
            normalize(args.inputs), old.inputs if old else None
        )
        op, changed = decide(translation, old, sealed)
        call = self._request(args.typ, args.name)
        record = ResourceState(urn, args.typ, args.name, "", sealed, {}, list(_current.dependencies), seq)
        record.retain_on_delete = _current.retain_on_delete
        name_input = translation.name_input
        if name_input and name_input not in inputs:
            generation = (old.generation + 1) if (old and op == "replace") else (old.generation if old else 0)
            keep = old.auto_name if old and op != "replace" else None
            record.auto_name = keep or auto_name(
                args.name, f"{self.stack}/{urn}/{generation}", translation.name_max_length
            )
            record.generation = generation
        full = {**inputs, name_input: record.auto_name} if record.auto_name else dict(inputs)
        if op == "same":
            record.id, record.outputs = old.id, self._secrets.recorded_outputs(old.outputs, full)
        elif self.preview:
            record.id = old.id if op == "update" else ""
            computed = old.outputs if op == "update" else dict.fromkeys(("arn",), UNKNOWN)
            record.outputs = {**computed, **full}
        elif op == "create":
            record.id, computed = translation.create(call, full)
            record.outputs = {**full, **computed}
        elif op == "update":
            olds = {**old.inputs, name_input: old.auto_name} if old.auto_name else old.inputs
            computed = translation.update(call, old.id, olds, full, changed)
            record.id, record.outputs = old.id, {**old.outputs, **full, **computed}
        else:  # replace: create first (a name collision surfaces here), delete the old later
            if translation.delete_before_replace or _current.delete_before_replace:
                if not old.retain_on_delete:
                    translation.delete(call, old.id, old.inputs, old.outputs)
                self._deleted.add(urn)
            else:
                self._replaced.append(old)
            record.id, computed = translation.create(call, full)
            record.outputs = {**full, **computed}
        # The program gets its secrets back marked secret; the state keeps them sealed.
        secret_paths |= {(key,) for key in _current.secret_outputs}
        program_outputs = self._secrets.wrap(record.outputs, secret_paths)
        record.outputs = self._secrets.seal(record.outputs, secret_paths, old.outputs if old else None)
        with self._lock:
            self._registered[urn] = record
            physical = record.auto_name or record.id or full.get(name_input or "", "")
            self._operations.append(
                Operation(op, args.typ, args.name, physical, sorted(changed) if op != "create" else [])
            )
        return record.id, _without_assets(program_outputs)

    def _delete_leftovers(self) -> None:
        gone = [r for urn, r in self._old.resources.items() if urn not in self._registered]
        for old in sorted(gone + self._replaced, key=lambda r: r.seq, reverse=True):
            if old not in self._replaced:  # the old half of a replacement is part of its "replace"
                self._operations.append(Operation("delete", old.type, old.name, old.auto_name or old.id))
            if self.preview:
                continue
            translation = lookup(old.type)
            inputs = {**old.inputs, translation.name_input: old.auto_name} if old.auto_name else old.inputs
            try:
                if not old.retain_on_delete:  # retained: forgotten by the stack, left in AWS
                    translation.delete(self._request(old.type, old.name), old.id, inputs, old.outputs)
            except Exception as exc:
                self._failure = (
                    exc if isinstance(exc, DeployError) else DeployError(f"{old.name} ({old.type}): {exc}")
                )
                return
            self._deleted.add(old.urn if old not in self._replaced else f"{old.urn}#replaced")

    def _save(self, outputs: dict[str, Any]) -> None:
        state = State(self.stack, outputs=outputs)
        # What was not done stays recorded: untouched old resources and undeleted old halves.
        for urn, old in self._old.resources.items():
            if urn not in self._registered and urn not in self._deleted:
                state.resources[urn] = old
        for old in self._replaced:
            if f"{old.urn}#replaced" not in self._deleted:
                state.resources[f"{old.urn}#replaced"] = ResourceState(
                    **{**old.__dict__, "urn": f"{old.urn}#replaced"}
                )
        state.resources.update(self._registered)
        state.save(self.state_path)
