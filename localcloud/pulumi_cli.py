"""``pulumi`` for scripts, backed by the local engine and the emulator at ``AWS_ENDPOINT_URL``.

CI scripts (``.ci/deploy``, ``.ci/preview``) call the Pulumi CLI. With ``localcloud/bin`` first
on ``PATH`` they run unchanged against the local cloud: ``localcloud/bin/pulumi`` runs this
module with the repository's ``.venv`` python. Nothing is installed into a virtualenv's
``bin/``, so a real Pulumi CLI there (or anywhere on ``PATH``) is never shadowed unless a
rehearsal puts ``localcloud/bin`` in front on purpose.

The subset the scripts use, as the Pulumi CLI takes it::

    pulumi version                                         the Pulumi SDK's version (the engine's)
    pulumi login [<url>] [--local]                         file://<dir>, s3://<bucket>[/<prefix>][?region=]
    pulumi stack init <stack> [--secrets-provider ...]
    pulumi stack select <stack> [--create|-c] [--secrets-provider passphrase|awskms://...]
    pulumi config set <key> <value> [--secret]
    pulumi preview [--diff]
    pulumi up --yes [--diff] [--skip-preview]
    pulumi stack output [<name>] [--json] [--show-secrets]
    pulumi destroy --yes
    pulumi refresh --yes
    global: --stack|-s <stack>, --cwd|-C <dir>, --non-interactive

Anything else is refused by name (exit 2). Exit codes are the Pulumi CLI's (v3.226.1 and
later, pulumi.com/docs/iac/cli/exit-codes): 0 success, 1 another error, 2 invalid arguments,
configuration or a missing ``--yes``, 3 not logged in, 4 a resource operation failed, 6 the
stack does not exist, 8 interrupted.

The backend (``PULUMI_BACKEND_URL``, else the last ``login``, kept in
``$PULUMI_HOME/localcloud.json``) holds each stack's state as the engine writes it
(``.localcloud/<project>/<stack>.json`` under the folder of a ``file://`` URL; in the emulator's
bucket of an ``s3://`` URL, ``.pulumi/stacks/<project>/<stack>.json`` as Pulumi lays it out). A stack exists once ``stack select --create``
made it (or ``stack init``). Its secrets provider goes into ``Pulumi.<stack>.yaml`` when the
stack is created and the file holds no key yet (an existing stack keeps its own, as
pulumi/pulumi#5650 describes): the flag's, else the ``secretsprovider`` the file names, else
``passphrase`` (``PULUMI_CONFIG_PASSPHRASE``); ``awskms://<key>`` gets a data key encrypted by
the emulator's KMS.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_RESOURCE, EXIT_NO_STACK, EXIT_CANCELED = 0, 1, 2, 3, 4, 6, 8
PROG = "pulumi (local cloud)"

# Command -> the flags it takes (name -> takes a value). Global flags are accepted everywhere.
_GLOBAL = {"--stack": True, "-s": True, "--cwd": True, "-C": True, "--non-interactive": False}
_COMMANDS: dict[tuple[str, ...], dict[str, bool]] = {
    ("version",): {},
    ("login",): {"--local": False},
    ("stack", "init"): {"--secrets-provider": True},
    ("stack", "select"): {"--create": False, "-c": False, "--secrets-provider": True},
    ("config", "set"): {"--secret": False, "--plaintext": False},
    ("preview",): {"--diff": False, "--policy-pack": True},
    ("up",): {"--yes": False, "-y": False, "--diff": False, "--skip-preview": False, "--policy-pack": True},
    ("stack", "output"): {"--json": False, "-j": False, "--show-secrets": False},
    ("destroy",): {"--yes": False, "-y": False},
    ("refresh",): {"--yes": False, "-y": False},
}


class Failure(Exception):
    """A command that fails with the Pulumi CLI's exit code for it."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Invocation:
    command: tuple[str, ...]
    args: list[str]
    flags: dict[str, Any]

    def flag(self, *names: str) -> Any:
        return next((self.flags[n] for n in names if n in self.flags), None)


def parse(argv: list[str]) -> Invocation:
    """The command, its positional arguments and flags; anything unsupported refused by name."""
    takes_value = {name for flags in (_GLOBAL, *_COMMANDS.values()) for name, value in flags.items() if value}
    words, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in takes_value
        else:
            words.append(arg)
    command = next((c for c in sorted(_COMMANDS, key=len, reverse=True) if tuple(words[: len(c)]) == c), None)
    if command is None:
        shown = " ".join(words[:2] if words[:1] in (["stack"], ["config"]) else words[:1]) or "(no command)"
        raise Failure(
            EXIT_USAGE,
            f"`pulumi {shown}` is not supported by the local cloud's pulumi "
            f"(supported: {', '.join(' '.join(c) for c in _COMMANDS)})",
        )
    allowed = {**_GLOBAL, **_COMMANDS[command]}
    flags: dict[str, Any] = {}
    positional: list[str] = []
    rest = list(argv)
    for word in command:
        rest.remove(word)
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if name not in allowed:
                raise Failure(
                    EXIT_USAGE,
                    f"`pulumi {' '.join(command)}`: flag {name} is not supported by the local cloud's pulumi "
                    f"(supported: {', '.join(sorted(allowed))})",
                )
            if allowed[name]:
                if not eq:
                    i += 1
                    if i >= len(rest):
                        raise Failure(EXIT_USAGE, f"flag {name} needs a value")
                    value = rest[i]
                flags[name] = value
            else:
                flags[name] = True
        else:
            positional.append(arg)
        i += 1
    return Invocation(command, positional, flags)


# -- where things are --------------------------------------------------------------------------
def _home() -> Path:
    return Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


def _settings() -> dict[str, Any]:
    path = _home() / "localcloud.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_settings(settings: dict[str, Any]) -> None:
    path = _home() / "localcloud.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1, sort_keys=True))


def find_project(cwd: Path) -> Path:
    """The folder of the nearest ``Pulumi.yaml`` at or above ``cwd``, as the CLI finds it."""
    for folder in (cwd, *cwd.parents):
        if (folder / "Pulumi.yaml").exists():
            return folder
    raise Failure(EXIT_USAGE, f"no Pulumi.yaml project file found (searching upwards from {cwd})")


def backend_url() -> str:
    url = os.environ.get("PULUMI_BACKEND_URL") or _settings().get("backend")
    if not url:
        raise Failure(
            EXIT_AUTH, "not logged in: run `pulumi login <file://dir|s3://bucket>` or set PULUMI_BACKEND_URL"
        )
    return url


def endpoint_url() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        raise Failure(
            EXIT_USAGE,
            "AWS_ENDPOINT_URL is not set: the local cloud's pulumi deploys into the emulator it names "
            "(start one with `python -m localcloud.emulator`)",
        )
    return url


def assume_web_identity() -> None:
    """A CI job's credentials, as the Pulumi CLI and its AWS provider get them: with
    ``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_TOKEN_FILE`` set (GitLab's ID token), the AWS SDK's
    credential chain calls ``AssumeRoleWithWebIdentity``, here on the emulator's STS, before any
    other request; a token the role's trust refuses stops the command with STS's error.

    The engine's requests and the state backend's then go out with those credentials: the
    deploy runs as the job's role, authorised as IAM would (localcloud/emulator/authorisation.py).
    """
    if not (os.environ.get("AWS_ROLE_ARN") and os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")):
        return
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint_url()  # the STS it asks is the emulator's (botocore reads AWS_ENDPOINT_URL)
    # The Go SDK under the CLI reads AWS_REGION too; botocore only AWS_DEFAULT_REGION.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "eu-west-1"
    try:
        # Static keys in the environment come first in the chain, as for the real CLI.
        frozen = boto3.Session(region_name=region).get_credentials().get_frozen_credentials()
    except (ClientError, BotoCoreError, OSError) as exc:  # OSError: the token file unreadable
        raise Failure(
            EXIT_ERROR, f"AWS credentials for {os.environ['AWS_ROLE_ARN']} (AWS_ROLE_ARN): {exc}"
        ) from None
    from localcloud.emulator.session import deploy_as

    deploy_as(
        {
            "aws_access_key_id": frozen.access_key,
            "aws_secret_access_key": frozen.secret_key,
            "aws_session_token": frozen.token,
        }
    )


class Backend:
    """Stack state under a ``file://`` folder or in an ``s3://`` bucket of the emulator."""

    def __init__(self, url: str, project: str):
        self.url, self.project = url, project
        parsed = urlparse(url)
        self.scheme = parsed.scheme
        if parsed.scheme == "file":
            folder = Path(os.path.expanduser((parsed.netloc + parsed.path) or "~"))
            self.folder = folder / ".localcloud" / project
        elif parsed.scheme == "s3":
            self.bucket = parsed.netloc
            # Pulumi's own layout in the bucket (what the deploy roles are granted on).
            self.prefix = "/".join(p for p in (parsed.path.strip("/"), ".pulumi", "stacks", project) if p)
            self.region = (
                parse_qs(parsed.query).get("region") or [os.environ.get("AWS_REGION", "eu-west-1")]
            )[0]
            self.folder = Path(tempfile.mkdtemp(prefix="localcloud-state-"))
        else:
            raise Failure(
                EXIT_USAGE,
                f"backend {url}: the local cloud's pulumi keeps state under file:// or s3:// (in the emulator)",
            )

    def _s3(self):
        from localcloud.emulator.session import session_for

        return session_for(self.region).client("s3", endpoint_url=endpoint_url())

    def _key(self, stack: str) -> str:
        return f"{self.prefix}/{stack}.json"

    def pull(self, stack: str) -> bool:
        """The stack's state into ``self.folder``; False when the stack does not exist."""
        path = self.folder / f"{stack}.json"
        if self.scheme == "file":
            return path.exists()
        from botocore.exceptions import ClientError

        try:
            body = self._s3().get_object(Bucket=self.bucket, Key=self._key(stack))["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return False
            raise Failure(EXIT_ERROR, f"backend {self.url}: {exc}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return True

    def push(self, stack: str) -> None:
        path = self.folder / f"{stack}.json"
        if self.scheme == "s3" and path.exists():
            self._s3().put_object(Bucket=self.bucket, Key=self._key(stack), Body=path.read_bytes())


# -- the stack file ------------------------------------------------------------------------------
def _scalar(value: str) -> str:
    dumped = yaml.safe_dump(value, default_style=None, width=10**6).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


def set_stack_setting(path: Path, key: str, value: str) -> None:
    """A top-level setting (``encryptionsalt``, ``secretsprovider``...) written before ``config:``,
    keeping the file's comments."""
    lines = path.read_text().splitlines() if path.exists() else []
    entry = f"{key}: {_scalar(value)}"
    for i, line in enumerate(lines):
        if line.startswith(f"{key}:"):
            lines[i] = entry
            break
    else:
        at = lines.index("config:") if "config:" in lines else len(lines)
        lines.insert(at, entry)
    path.write_text("\n".join(lines) + "\n")


def set_config(path: Path, key: str, value: str | None = None, secure: str | None = None) -> None:
    """``config.<key>`` set in the stack file, in place, keeping its comments and order."""
    lines = path.read_text().splitlines() if path.exists() else []
    rendered = (
        [f"  {key}:", f"    secure: {secure}"] if secure is not None else [f"  {key}: {_scalar(value)}"]
    )
    if "config:" not in lines:
        lines.append("config:")
    start = lines.index("config:")
    end = start + 1
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    for i in range(start + 1, end):
        if lines[i].startswith(f"  {key}:"):
            j = i + 1
            while j < end and lines[j].startswith("   "):
                j += 1
            lines[i:j] = rendered
            break
    else:
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        lines[end:end] = rendered
    path.write_text("\n".join(lines) + "\n")


def _stack_settings(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


# -- the commands ----------------------------------------------------------------------------
class Cli:
    def __init__(self, inv: Invocation):
        self.inv = inv
        cwd = Path(inv.flag("--cwd", "-C") or os.getcwd()).resolve()
        self.cwd = cwd

    # The project, its name, the stack and the backend, each read only where a command needs it.
    @property
    def root(self) -> Path:
        return find_project(self.cwd)

    @property
    def project(self) -> str:
        return yaml.safe_load((self.root / "Pulumi.yaml").read_text())["name"]

    def stack(self) -> str:
        stack = self.inv.flag("--stack", "-s") or _settings().get("selected", {}).get(str(self.root))
        if not stack:
            raise Failure(
                EXIT_NO_STACK, "no stack selected: pass --stack or run `pulumi stack select <stack>`"
            )
        return stack

    def backend(self) -> Backend:
        return Backend(backend_url(), self.project)

    def existing(self, backend: Backend, stack: str) -> None:
        if not backend.pull(stack):
            raise Failure(EXIT_NO_STACK, f"no stack named '{stack}' found")

    def run(self) -> int:
        if self.inv.command != ("version",):
            assume_web_identity()
        handler = getattr(self, "_" + "_".join(self.inv.command))
        return handler()

    def _login(self) -> int:
        url = self.inv.args[0] if self.inv.args else ("file://~" if self.inv.flag("--local") else None)
        url = url or os.environ.get("PULUMI_BACKEND_URL")
        if not url:
            raise Failure(
                EXIT_USAGE, "login: give the backend URL (file://<dir> or s3://<bucket>) or --local"
            )
        Backend(url, "-")  # refuses what it cannot keep state in
        _save_settings({**_settings(), "backend": url})
        print(f"Logged in to the local cloud's backend {url}")
        return EXIT_OK

    def _version(self) -> int:
        from importlib.metadata import version

        # The engine runs the program with this SDK, as the CLI of the same version would.
        print(f"v{version('pulumi')}")
        return EXIT_OK

    def _stack_init(self) -> int:
        if not self.inv.args and not self.inv.flag("--stack", "-s"):
            raise Failure(EXIT_USAGE, "stack init: give the stack name")
        stack = self.inv.args[0] if self.inv.args else self.stack()
        backend = self.backend()
        if backend.pull(stack):
            raise Failure(EXIT_ERROR, f"stack '{stack}' already exists")
        self._create(stack, backend)
        self._select(stack)
        return EXIT_OK

    def _stack_select(self) -> int:
        if not self.inv.args and not self.inv.flag("--stack", "-s"):
            raise Failure(EXIT_USAGE, "stack select: give the stack name")
        stack = self.inv.args[0] if self.inv.args else self.stack()
        backend = self.backend()
        if not backend.pull(stack):
            if not self.inv.flag("--create", "-c"):
                raise Failure(EXIT_NO_STACK, f"no stack named '{stack}' found")
            self._create(stack, backend)
        self._select(stack)
        return EXIT_OK

    def _create(self, stack: str, backend: Backend) -> None:
        from localcloud.state import State

        named = _stack_settings(self.root / f"Pulumi.{stack}.yaml").get("secretsprovider")
        self._init_secrets(stack, self.inv.flag("--secrets-provider") or named or "passphrase")
        State(stack).save(backend.folder / f"{stack}.json")
        backend.push(stack)
        print(f"Created stack '{stack}'")

    def _select(self, stack: str) -> None:
        settings = _settings()
        settings.setdefault("selected", {})[str(self.root)] = stack
        _save_settings(settings)

    def _init_secrets(self, stack: str, provider: str) -> None:
        """A new stack's secrets provider in its stack file, unless the file names one already."""
        from localcloud import secrets

        path = self.root / f"Pulumi.{stack}.yaml"
        settings = _stack_settings(path)
        if settings.get("encryptionsalt") or settings.get("encryptedkey"):
            return
        if provider == "passphrase":
            try:
                salt = secrets.new_encryption_salt(secrets.read_passphrase())
            except secrets.SecretsError as exc:
                raise Failure(EXIT_USAGE, str(exc)) from None
            set_stack_setting(path, "encryptionsalt", salt)
        elif provider.startswith("awskms://"):
            region = (parse_qs(urlparse(provider).query).get("region") or ["eu-west-1"])[0]
            from localcloud.emulator.session import session_for

            kms = session_for(region).client("kms", endpoint_url=endpoint_url())
            data_key = _random.token_bytes(32)
            blob = kms.encrypt(KeyId=secrets.kms_key_id(provider), Plaintext=data_key)["CiphertextBlob"]
            set_stack_setting(path, "secretsprovider", provider)
            set_stack_setting(path, "encryptedkey", base64.b64encode(blob).decode())
        else:
            raise Failure(
                EXIT_USAGE,
                f"--secrets-provider {provider}: the local cloud's pulumi knows passphrase and awskms://",
            )

    def _config_set(self) -> int:
        if len(self.inv.args) != 2:
            raise Failure(
                EXIT_USAGE, "config set: give <key> <value> (reading the value from stdin is not supported)"
            )
        key, value = self.inv.args
        key = key if ":" in key else f"{self.project}:{key}"
        stack = self.stack()
        self.existing(self.backend(), stack)
        path = self.root / f"Pulumi.{stack}.yaml"
        if self.inv.flag("--secret"):
            from localcloud import secrets

            crypter = secrets.stack_crypter(self.root, stack, lambda: self._kms(path))
            if crypter is None:
                raise Failure(
                    EXIT_USAGE, f"{path.name}: no secrets provider; run `pulumi stack select --create`"
                )
            try:
                set_config(path, key, secure=crypter().encrypt(value))
            except secrets.SecretsError as exc:
                raise Failure(EXIT_USAGE, f"{key}: {exc}") from None
        else:
            set_config(path, key, value)
        return EXIT_OK

    def _kms(self, path: Path):
        from localcloud.emulator.session import session_for

        provider = _stack_settings(path).get("secretsprovider", "")
        region = (parse_qs(urlparse(provider).query).get("region") or ["eu-west-1"])[0]
        return session_for(region).client("kms", endpoint_url=endpoint_url())

    def _engine(self, stack: str, backend: Backend):
        from localcloud.engine import Engine

        return Engine(
            stack, endpoint_url(), state_dir=backend.folder, root=self.root, policy_pack=self._policy_pack()
        )

    def _policy_pack(self) -> bool:
        """As the CLI, a pack runs only when ``--policy-pack`` names one (a folder with its
        PulumiPolicy.yaml); the engine then runs the pack of its own checkout (policies/)."""
        path = self.inv.flag("--policy-pack")
        if path is None:
            return False
        if not (self.root / path / "PulumiPolicy.yaml").is_file():
            raise Failure(EXIT_USAGE, f"--policy-pack {path}: no PulumiPolicy.yaml in {self.root / path}")
        return True

    def _deploy(self, action: str) -> int:
        """preview, up, destroy and refresh: the engine run, its table printed, the state kept."""
        import logging
        import warnings

        from rich.console import Console
        from rich.markup import escape

        from localcloud.cli import render
        from localcloud.secrets import SecretsError
        from localcloud.translations.base import DeployError

        if action != "preview" and not self.inv.flag("--yes", "-y"):
            raise Failure(
                EXIT_USAGE,
                f"{action}: --yes must be passed in to proceed when running in non-interactive mode",
            )
        logging.getLogger("sagemaker").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")
        stack, backend = self.stack(), self.backend()
        self.existing(backend, stack)
        console = Console(width=220) if not sys.stdout.isatty() else Console()
        try:
            engine = self._engine(stack, backend)
            if action == "preview":
                result = engine.up(preview=True)
            elif action == "up":
                # The engine's `up` previews first, as `pulumi up` does: what the preview refuses
                # is refused before any write (--skip-preview is accepted and changes nothing).
                result = engine.up()
            elif action == "destroy":
                result = engine.destroy()
            else:
                result = engine.refresh()
        except Failure:
            raise
        except Exception as exc:  # reported as the CLI reports it, with its exit code
            Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}")
            if isinstance(exc, DeployError):
                return EXIT_RESOURCE
            return EXIT_USAGE if isinstance(exc, SecretsError) else EXIT_ERROR
        finally:
            if action != "preview":  # a preview writes no state (the preview role may only read it)
                backend.push(stack)
        render(result, console, show_same=bool(self.inv.flag("--diff")))
        return EXIT_OK

    def _preview(self) -> int:
        return self._deploy("preview")

    def _up(self) -> int:
        return self._deploy("up")

    def _destroy(self) -> int:
        return self._deploy("destroy")

    def _refresh(self) -> int:
        return self._deploy("refresh")

    def _stack_output(self) -> int:
        from localcloud.secrets import SecretKeeper, display, stack_crypter

        stack, backend = self.stack(), self.backend()
        self.existing(backend, stack)
        outputs = json.loads((backend.folder / f"{stack}.json").read_text()).get("outputs", {})
        if self.inv.flag("--show-secrets"):
            path = self.root / f"Pulumi.{stack}.yaml"
            outputs = SecretKeeper(stack_crypter(self.root, stack, lambda: self._kms(path))).reveal(outputs)
        else:
            outputs = display(outputs)
        if self.inv.args:
            name = self.inv.args[0]
            if name not in outputs:
                raise Failure(EXIT_ERROR, f"current stack does not have output property '{name}'")
            value = outputs[name]
            if self.inv.flag("--json", "-j"):
                print(json.dumps(value, indent=2))
            else:
                print("" if value is None else value if isinstance(value, str) else json.dumps(value))
        elif self.inv.flag("--json", "-j"):
            print(json.dumps(outputs, indent=2, sort_keys=True))
        else:
            print(f"Current stack outputs ({len(outputs)}):")
            for key in sorted(outputs):
                print(
                    f"    {key}  {outputs[key] if isinstance(outputs[key], str) else json.dumps(outputs[key])}"
                )
        return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return Cli(parse(argv)).run()
    except Failure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return failure.code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_CANCELED


if __name__ == "__main__":
    sys.exit(main())
