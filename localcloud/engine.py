"""The engine: run a Pulumi program (infra/, or another project such as infra/bootstrap) as Pulumi does,
with each resource really made in the emulator.

The program runs under the SDK's mock runtime exactly as ``pulumi-language-python-exec``
runs it (working directory the repository root, config from ``Pulumi.<stack>.yaml`` set
with ``set_all_config`` and secrets marked, the project and stack names). The mocks'
``new_resource`` is where a deploy happens: the recorded state decides the operation, and
the type's translation makes the AWS requests. Pulumi runs independent registrations on
a thread pool, so independent resources are created concurrently, as the real engine does.

What ``pulumi up`` does where a user's state is at stake, and this engine with it:

- ``up`` previews first: the program runs once with every translation *dry* (each request
  fitted to its input shape and checked as AWS checks it, references looked up, nothing
  sent), and only a preview without a failure goes on to the deploy, which runs the
  program again. ``--preview`` is that first run alone.
- A replacement creates the new resource first and marks the old one for deletion only once
  the new one exists; the old halves are deleted after the program, newest first. A failed
  create leaves the old resource live and recorded as it was.
- Delete-before-replace (the program's ``delete_before_replace``, and the bridge's rule for a
  resource whose auto-nameable ``name`` is set explicitly) deletes first; the resources whose
  ForceNew inputs read the deleted one are deleted before it and created again when the
  program declares them (Pulumi's ``calculateDependentReplacements``).
- State is written after every step (a checkpoint), also when the deploy fails or is
  interrupted; a resource whose create failed after it existed is recorded and updated by
  the next deploy.
- A delete of a resource that is already gone succeeds; resources the program no longer
  declares are deleted after it, newest first (registration order puts dependencies first).
- The state names the emulator it was recorded against; a state of another emulator is
  refused until ``refresh`` (or a fresh state) reconciles it.

Public entry points (what other modules call)::

    Engine(stack, endpoint_url, *, state_dir=None, overrides=None, root=ROOT, fresh_state=False)
    Engine.up(*, preview=False, refresh=False) -> Result      pulumi up / preview [--refresh]
    Engine.destroy(*, preview=False, refresh=False) -> Result pulumi destroy
    Engine.refresh(*, preview=False) -> Result               pulumi refresh
    Engine.state_path, Engine.config, Engine.region, Engine.project
    project_program(project), stack_config(stack, root), engine_config(config)

Each raises :class:`~localcloud.translations.base.DeployError` naming the resource that failed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import runpy
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import requests
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import UNKNOWN
from pulumi.runtime.settings import get_root_resource, set_root_resource

from infra import config as infra_config
from localcloud import boundary, options, policy, secrets
from localcloud.clients import CALLS, client
from localcloud.emulator.session import deploying_as_administrator
from localcloud.state import Operation, ResourceState, Result, State, decide, normalize
from localcloud.translations import lookup
from localcloud.translations.base import DeployError, Request, Translation, auto_name

ROOT = Path(__file__).resolve().parents[1]
# Where the emulator answers with its instance id (new at every start and reset).
INSTANCE_ROUTE = "/_mlops/instance"
_current = threading.local()


def project_program(project: Path) -> tuple[str, Path]:
    """A Pulumi project's name and the program file its ``Pulumi.yaml`` names (``main``)."""
    settings = yaml.safe_load((project / "Pulumi.yaml").read_text())
    main = project / settings.get("main", ".")
    return settings["name"], main / "__main__.py" if main.is_dir() else main


def _default(key: str) -> str:
    return next(k.default for k in infra_config.KEYS if k.name == key)


def stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise DeployError(f"--stack {stack}: no {path.name} in {root}")
    return yaml.safe_load(path.read_text()).get("config") or {}


def engine_config(config: dict[str, Any]) -> dict[str, str]:
    """The config as the engine hands it to a program: strings, structured values as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def emulator_identity(endpoint_url: str) -> str:
    """The emulator's instance id (a new one at each start and reset), or its URL when it has none."""
    try:
        answer = requests.get(f"{endpoint_url}{INSTANCE_ROUTE}", timeout=10)
        if answer.status_code == 200:
            return answer.json()["instance"]
    except (requests.RequestException, ValueError, KeyError):
        pass
    return endpoint_url


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
        context = record.msg
        return not (
            isinstance(context, str)
            and context.startswith("Future exception was never retrieved")
            and record.exc_info
            and isinstance(record.exc_info[1], DeployError | KeyboardInterrupt)
        )


logging.getLogger("asyncio").addFilter(_QuietFailedRegistrations())


class _Monitor(MockMonitor):
    """The SDK's mock monitor, telling the mocks which URN, options and dependencies they register."""

    def RegisterResource(self, request):
        _current.urn = self.make_urn(request.parent, request.type, request.name)
        _current.dependencies = sorted(set(request.dependencies))
        _current.property_dependencies = {
            key: sorted(set(deps.urns)) for key, deps in request.propertyDependencies.items() if deps.urns
        }
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


def _physical_inputs(translation: Translation, resource: ResourceState) -> dict[str, Any]:
    """A recorded resource's inputs with its auto-name, as its translation's requests need them."""
    if resource.auto_name and translation.name_input:
        return {**resource.inputs, translation.name_input: resource.auto_name}
    return resource.inputs


class Engine:
    """Deploys one stack into the emulator at ``endpoint_url``; ``up()``, ``destroy()``, ``refresh()``."""

    def __init__(
        self,
        stack: str,
        endpoint_url: str,
        *,
        state_dir: Path | None = None,
        overrides: dict[str, Any] | None = None,
        root: Path = ROOT,
        fresh_state: bool = False,
        policy_pack: bool = True,
    ):
        """``root`` is the Pulumi project: the repository (the platform's program, infra/) or
        another project's folder, such as infra/bootstrap. ``policy_pack``: run the security
        policy pack (policies/) before any write, as CI's `pulumi up --policy-pack policies` does."""
        self.policy_pack = policy_pack
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
        self._lock = threading.RLock()

    # -- AWS clients: strict, counted, no retries (a retried write would hide a failure) ----
    def client(self, service: str):
        return client(self.endpoint_url, self.region, service)

    def _request(self, type_: str, name: str) -> Request:
        return Request(
            self.client, name, type_, self.region, self._account, dry=self.preview, planned=self._planned
        )

    # -- the commands ---------------------------------------------------------------------------
    def up(self, *, preview: bool = False, refresh: bool = False) -> Result:
        """``pulumi up`` (``preview``: ``pulumi preview``): the preview, then the deploy."""
        started = time.perf_counter()
        self._begin(refresh=refresh, preview=preview)
        if self.policy_pack:
            # The pack over what the program declares, before any request (as the CLI's analyzer).
            self._check_policies()
        # `pulumi up` previews first: every request is checked before the first write.
        self._pass(preview=True)
        self._raise_failure()
        if preview:
            return self._result(self._captured, started)
        if self._unchanged():
            # Nothing to do: the deploy would make no request. The preview's outputs are all
            # known (every resource is as recorded), so they are the deploy's.
            self.preview = False
            self._checkpoint(self._captured)
            return self._result(self._captured, started)
        self._pass(preview=False)
        return self._result(self._captured, started)

    def _unchanged(self) -> bool:
        """True when the preview found every resource as recorded and nothing to delete."""
        return (
            all(o.op == "same" for o in self._operations)
            and len(self._registered) == len(self._old.resources)
            and not any(o.init_failed for o in self._old.resources.values())
        )

    def destroy(self, *, preview: bool = False, refresh: bool = False) -> Result:
        """``pulumi destroy``: every recorded resource deleted, newest first."""
        started = time.perf_counter()
        self._begin(refresh=refresh, preview=preview)
        self._reset_pass(preview)
        try:
            self._delete_leftovers()
        finally:
            if not preview:
                self._checkpoint({} if self._failure is None else self._old.outputs)
        self._raise_failure()
        return self._result({}, started)

    def refresh(self, *, preview: bool = False) -> Result:
        """``pulumi refresh``: the state reconciled with what the emulator holds (no program run)."""
        started = time.perf_counter()
        self._begin(refresh=True, preview=preview)
        self._reset_pass(preview)
        self._operations = list(self._refreshed)
        return self._result(self._old.outputs, started)

    # -- one deploy's frame -------------------------------------------------------------------
    def _begin(self, *, refresh: bool, preview: bool) -> None:
        self._calls_before = CALLS.copy()
        self._account = self.client("sts").get_caller_identity()["Account"]
        self._identity = emulator_identity(self.endpoint_url)
        self._old = State(self.stack) if self.fresh_state else State.load(self.state_path, self.stack)
        self._refreshed: list[Operation] = []
        recorded = self._old.emulator
        if refresh:
            self._refresh_state()
            if not preview:
                self._old.emulator = self._identity
                self._old.save(self.state_path)
        elif self._old.resources and recorded is not None and recorded != self._identity:
            raise DeployError(
                f"{self.state_path} records {len(self._old.resources)} resources of stack {self.stack} in "
                f"another emulator (instance {recorded}), not in the one at {self.endpoint_url} "
                f"(instance {self._identity}): it was restarted or reset, or the state is an earlier "
                "embedded run's. Run again with --refresh to keep what still exists and recreate the rest, "
                f"or delete {self.state_path} to start afresh"
            )
        # A person's deploy gets the boundary the bootstrap would make; a CI job's role relies on
        # the bootstrap having made it (it may not read or create policies).
        if not preview and self.project == infra_config.PROJECT and deploying_as_administrator():
            schema = self.config.get(f"{infra_config.PROJECT}:schemaPath") or _default("schemaPath")
            boundary.ensure(self.client("iam"), self.stack, self.root / schema, self._account, self.region)

    def _refresh_state(self) -> None:
        """Each recorded resource read back: gone ones leave the state, read-back inputs update."""
        for key, resource in list(self._old.resources.items()):
            translation = lookup(resource.type)
            call = Request(self.client, resource.name, resource.type, self.region, self._account)
            found = translation.read(call, resource.id, _physical_inputs(translation, resource))
            physical = resource.auto_name or resource.id
            if found is None:
                del self._old.resources[key]
                self._refreshed.append(Operation("delete", resource.type, resource.name, physical))
                continue
            drifted = sorted(k for k, v in found.items() if resource.outputs.get(k) != v)
            resource.outputs = {**resource.outputs, **found}
            op = "update" if drifted else "same"
            self._refreshed.append(Operation(op, resource.type, resource.name, physical, drifted))

    def _reset_pass(self, preview: bool) -> None:
        self.preview = preview
        self._registered: dict[str, ResourceState] = {}
        # Old halves of replacements whose new half exists, by their state key; deleted at the end.
        self._replaced: dict[str, ResourceState] = {}
        # State keys deleted in this pass (leftovers, old halves, delete-before-replace).
        self._deleted: set[str] = set()
        # Dependents of a delete-before-replace, deleted first: URN -> the inputs that read it.
        self._dependents: dict[str, list[str]] = {}
        self._operations: list[Operation] = []
        self._failure: BaseException | None = None
        self._seq = itertools.count(1)
        # Names a preview has seen created, which later resources may reference.
        self._planned: set[str] = set()
        self._captured: dict[str, Any] = {}
        # Each recorded resource's JSON, kept across this pass's checkpoints (State.save).
        self._encoded: dict[int, tuple[ResourceState, str]] = {}

    def _pass(self, *, preview: bool) -> None:
        self._reset_pass(preview)
        completed = False
        try:
            self._captured = self._run_program()
            if self._failure is None:
                self._delete_leftovers()
            completed = self._failure is None
        finally:
            # Also on a failure or an interrupt: what was done stays recorded.
            if not preview:
                self._checkpoint(self._captured if completed else self._old.outputs)
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _result(self, outputs: dict[str, Any], started: float) -> Result:
        return Result(
            self.stack,
            self._operations,
            outputs,
            CALLS - self._calls_before,
            time.perf_counter() - started,
            self.preview,
            list(self._refreshed),
        )

    def _check_policies(self) -> None:
        """The policy pack over what the program declares, before any write: a mandatory
        violation raises ``PolicyViolationError`` naming each policy and resource, and the
        stack's resources and state stay as they were."""
        values, secret_keys = self._program_config()
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)
        policy.enforce(
            self.program,
            root=self.root,
            project=self.project,
            stack=self.stack,
            config=values,
            secret_keys=secret_keys,
            invoke=self._invoke,
        )

    def _program_config(self) -> tuple[dict[str, str], list[str]]:
        """The config the program reads (``secure:`` values decrypted) and which keys are secret:
        the ``secure:`` ones, as the CLI tells the program."""
        plain, secure = self._secrets.config(self.config)
        return engine_config(plain), sorted(secure)

    def _run_program(self) -> dict[str, Any]:
        mocks = _Mocks(self)
        # A new root stack resource for each run: set_mocks keeps the thread's previous one, whose
        # exports (another program's, an earlier run's) would otherwise become this stack's outputs.
        set_root_resource(None)
        pulumi.runtime.set_mocks(
            mocks, project=self.project, stack=self.stack, preview=self.preview, monitor=_Monitor(mocks)
        )
        try:
            pulumi.runtime.set_all_config(*self._program_config())
        except secrets.SecretsError as exc:  # before any resource: the state stays as it was
            self._failure = exc
            return {}
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
        except BaseException:
            # Interrupted: the run's tasks stay on this thread's event loop, and a later run in
            # the same process would resume them. They get a loop of their own, never run again.
            asyncio.set_event_loop(asyncio.new_event_loop())
            raise
        finally:
            os.chdir(cwd)
        if isinstance(self._failure, KeyboardInterrupt):
            raise self._failure
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
        except BaseException as exc:
            with self._lock:
                if self._failure is None:
                    self._failure = (
                        exc
                        if isinstance(exc, DeployError | KeyboardInterrupt)
                        else DeployError(f"{args.name} ({args.typ}): {exc}")
                    )
            raise

    # -- one resource -----------------------------------------------------------------------------
    def _apply(self, args, urn: str, seq: int) -> tuple[str, dict[str, Any]]:
        translation = lookup(args.typ)
        with self._lock:
            old = None if urn in self._deleted else self._old.resources.get(urn)
            dependent = self._dependents.get(urn)
        # Secret inputs go to AWS in clear, and to the state and the diff sealed.
        inputs, sealed, secret_paths = self._secrets.split(
            normalize(args.inputs), old.inputs if old else None
        )
        op, changed = decide(translation, old, sealed)
        call = self._request(args.typ, args.name)
        record = ResourceState(urn, args.typ, args.name, "", sealed, {}, list(_current.dependencies), seq)
        record.retain_on_delete = _current.retain_on_delete
        record.property_dependencies = dict(_current.property_dependencies)
        name_input = translation.name_input
        if name_input and name_input not in inputs:
            generation = (old.generation + 1) if (old and op == "replace") else (old.generation if old else 0)
            keep = old.auto_name if old and op != "replace" else None
            record.auto_name = keep or auto_name(
                args.name, f"{self.stack}/{urn}/{generation}", translation.name_max_length
            )
            record.generation = generation
        full = {**inputs, name_input: record.auto_name} if record.auto_name else dict(inputs)
        # The bridge deletes before it replaces a resource whose auto-nameable name the program
        # set (nameRequiresDeleteBeforeReplace): the new one would take the same name.
        delete_first = bool(
            translation.delete_before_replace
            or _current.delete_before_replace
            or (name_input and name_input in inputs)
        )
        if op == "same":
            record.id, record.outputs = old.id, self._secrets.recorded_outputs(old.outputs, full)
        elif op == "update":
            olds = _physical_inputs(translation, old)
            computed = translation.update(call, old.id, olds, full, changed)
            record.id, record.outputs = old.id, {**old.outputs, **full, **computed}
        elif op == "replace" and delete_first:
            self._replace_dependents(old)
            self._delete(old, urn)
            record.id, record.outputs = self._create(translation, call, full, record, None)
        elif op == "replace":
            # Created first; the old one is marked for deletion only once the new one exists.
            record.id, record.outputs = self._create(translation, call, full, record, old)
            with self._lock:
                self._replaced[f"{old.urn}#replaced:{old.id}"] = old
        else:
            record.id, record.outputs = self._create(translation, call, full, record, None)
        if self.preview and op in ("create", "replace"):
            record.id = ""
            record.outputs = {**dict.fromkeys(("arn",), UNKNOWN), **full}
            self._planned.update(v for v in full.values() if isinstance(v, str))
        elif self.preview and op == "update":
            record.outputs = {**old.outputs, **full}
        if dependent is not None and op == "create":
            op, changed = "replace", set(dependent)
            delete_first = True
        # The program gets its secrets back marked secret; the state keeps them sealed.
        secret_paths |= {(key,) for key in _current.secret_outputs}
        program_outputs = self._secrets.wrap(record.outputs, secret_paths)
        record.outputs = self._secrets.seal(record.outputs, secret_paths, old.outputs if old else None)
        self._record(record)
        with self._lock:
            physical = record.auto_name or record.id or full.get(name_input or "", "")
            self._operations.append(
                Operation(
                    op,
                    args.typ,
                    args.name,
                    physical,
                    sorted(changed) if op != "create" else [],
                    delete_first=op == "replace" and delete_first,
                )
            )
        return record.id, _without_assets(program_outputs)

    def _create(
        self,
        translation: Translation,
        call: Request,
        full: dict[str, Any],
        record: ResourceState,
        replacing: ResourceState | None,
    ) -> tuple[str, dict[str, Any]]:
        try:
            id_, computed = translation.create(call, full)
        except BaseException:
            if call.created_id is not None and not self.preview:
                # It exists: recorded as created with its create unfinished (Pulumi's init
                # errors), so the next deploy updates it instead of failing "already exists".
                record.id, record.outputs, record.init_failed = (
                    call.created_id,
                    {**full, **record.inputs},
                    True,
                )
                with self._lock:
                    if replacing is not None:
                        self._replaced[f"{replacing.urn}#replaced:{replacing.id}"] = replacing
                self._record(record)
            raise
        return id_, {**full, **computed}

    def _record(self, record: ResourceState) -> None:
        with self._lock:
            self._registered[record.urn] = record
            if not self.preview:
                self._checkpoint(self._old.outputs)

    # -- deletes -------------------------------------------------------------------------------------
    def _delete(self, resource: ResourceState, key: str) -> None:
        """Delete one recorded resource (kept in AWS when retained); already gone counts as done."""
        if not self.preview and not resource.retain_on_delete:
            translation = lookup(resource.type)
            call = self._request(resource.type, resource.name)
            try:
                translation.delete(call, resource.id, _physical_inputs(translation, resource))
            except DeployError as exc:
                if not exc.gone:  # the provider's deletes succeed on a resource already gone
                    raise
        with self._lock:
            self._deleted.add(key)
            if not self.preview:
                self._checkpoint(self._old.outputs)

    def _replace_dependents(self, replaced: ResourceState) -> None:
        """Delete, newest first, the recorded resources whose ForceNew inputs read ``replaced``
        (transitively): they are created again when the program declares them."""
        found: dict[str, tuple[ResourceState, set[str]]] = {}
        frontier = [replaced.urn]
        with self._lock:
            candidates = [
                r
                for key, r in self._old.resources.items()
                if key not in self._deleted and key not in self._registered and key != replaced.urn
            ]
        while frontier:
            source = frontier.pop()
            for resource in candidates:
                if resource.urn in found or source not in resource.dependencies:
                    continue
                reading = {k for k, urns in resource.property_dependencies.items() if source in urns}
                hit = reading & lookup(resource.type).force_new
                if hit:
                    found[resource.urn] = (resource, hit)
                    frontier.append(resource.urn)
        for resource, hit in sorted(found.values(), key=lambda f: f[0].seq, reverse=True):
            with self._lock:
                self._dependents[resource.urn] = sorted(hit)
            self._delete(resource, resource.urn)

    def _delete_leftovers(self) -> None:
        with self._lock:
            gone = [
                (key, r)
                for key, r in self._old.resources.items()
                if key not in self._registered and key not in self._deleted
            ]
            doomed = gone + list(self._replaced.items())
        for key, old in sorted(doomed, key=lambda d: d[1].seq, reverse=True):
            if key not in self._replaced:  # the old half of a replacement is part of its "replace"
                self._operations.append(Operation("delete", old.type, old.name, old.auto_name or old.id))
            try:
                self._delete(old, key)
            except DeployError as exc:
                self._failure = exc
                return
        # Dependents of a delete-before-replace the program no longer declares: deleted for good.
        for urn in self._dependents:
            if urn not in self._registered:
                old = self._old.resources[urn]
                self._operations.append(Operation("delete", old.type, old.name, old.auto_name or old.id))

    # -- the checkpoint -------------------------------------------------------------------------------
    def _checkpoint(self, outputs: dict[str, Any]) -> None:
        """The state as it is now, written at once (Pulumi checkpoints after every step)."""
        with self._lock:
            state = State(self.stack, outputs=outputs, emulator=self._identity)
            # What was not done stays recorded: untouched old resources and undeleted old halves.
            for key, old in self._old.resources.items():
                if key not in self._registered and key not in self._deleted:
                    state.resources[key] = old
            for key, old in self._replaced.items():
                if key not in self._deleted:
                    state.resources[key] = replace(old, urn=key)
            state.resources.update(self._registered)
            state.save(self.state_path, self._encoded)
