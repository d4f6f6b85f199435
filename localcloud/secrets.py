"""Secrets in the local cloud, as the Pulumi CLI keeps them: ``secure:`` config decrypted, and
no secret written in clear to ``.state`` or printed.

Stack files carry their secrets provider as the Pulumi CLI writes it:

    encryptionsalt: v1:<salt>:v1:<nonce>:<ciphertext of "pulumi">     the passphrase provider
    secretsprovider: awskms://alias/<name>?region=...                  a KMS key (here: the
    encryptedkey: <base64 KMS ciphertext of a 32-byte data key>        emulator's KMS)

and each ``secure:`` value is ``v1:<base64 nonce>:<base64 ciphertext>``: AES-256-GCM (12-byte
nonce, the 16-byte tag after the ciphertext), with, for the passphrase provider, a key derived
by PBKDF2-HMAC-SHA256 from ``PULUMI_CONFIG_PASSPHRASE`` (or the file ``PULUMI_CONFIG_PASSPHRASE_FILE``
names), the 8-byte salt and 1,000,000 iterations (pulumi/pulumi ``pkg/secrets/passphrase``,
``sdk/go/common/resource/config/crypt.go``), so a value the real CLI encrypted decrypts here.

A value the program marks secret (``pulumi.Output.secret``, ``config.require_secret``, a
resource's ``additional_secret_outputs``) reaches the engine wrapped in the SDK's secret
signature. :class:`SecretKeeper` unwraps it for the AWS requests, and records it in the state
as Pulumi's checkpoint does, under the same signature: encrypted with the stack's provider
when it has one, otherwise as a salted SHA-256 digest (enough to see that it changed, never the
value). Printed outputs show ``[secret]``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets as _random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

PBKDF2_ITERATIONS = 1_000_000  # pulumi/pulumi sdk/go/common/resource/config/crypt.go
SALT_BYTES = 8  # pkg/secrets/passphrase/manager.go
NONCE_BYTES = 12
MASK = "[secret]"
_PASSPHRASE_MISSING = "passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"


class SecretsError(RuntimeError):
    """A secret that cannot be read or kept: the message names the key and what to do."""


# -- the symmetric crypter (v1:<nonce>:<ciphertext>) ------------------------------------------
class Crypter:
    """AES-256-GCM with a 32-byte key, in Pulumi's ``v1:<nonce>:<ciphertext>`` text form."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._aes = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        nonce = _random.token_bytes(NONCE_BYTES)
        sealed = self._aes.encrypt(nonce, plaintext.encode(), None)
        return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"

    def decrypt(self, value: str) -> str:
        parts = value.split(":")
        if len(parts) != 3 or parts[0] != "v1":
            raise SecretsError(f"{value[:12]}...: not a v1:<nonce>:<ciphertext> value")
        try:
            nonce, sealed = (
                base64.b64decode(parts[1], validate=True),
                base64.b64decode(parts[2], validate=True),
            )
            return self._aes.decrypt(nonce, sealed, None).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretsError("the value does not decrypt with this stack's key") from exc


def passphrase_key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, PBKDF2_ITERATIONS, 32)


def passphrase_crypter(passphrase: str, encryption_salt: str) -> Crypter:
    """The crypter of a stack's ``encryptionsalt``, checked as the CLI checks the passphrase:
    the state's own ciphertext must decrypt to ``pulumi``."""
    parts = encryption_salt.split(":", 2)
    if len(parts) != 3 or parts[0] != "v1":
        raise SecretsError("encryptionsalt: malformed (expected v1:<salt>:v1:<nonce>:<ciphertext>)")
    crypter = Crypter(passphrase_key(passphrase, base64.b64decode(parts[1])))
    try:
        if crypter.decrypt(parts[2]) == "pulumi":
            return crypter
    except SecretsError:
        pass
    raise SecretsError(
        "incorrect passphrase: set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to this stack's passphrase"
    )


def new_encryption_salt(passphrase: str) -> str:
    """A new stack's ``encryptionsalt``, as ``pulumi stack init`` writes it."""
    salt = _random.token_bytes(SALT_BYTES)
    crypter = Crypter(passphrase_key(passphrase, salt))
    return f"v1:{base64.b64encode(salt).decode()}:{crypter.encrypt('pulumi')}"


def read_passphrase() -> str:
    if "PULUMI_CONFIG_PASSPHRASE" in os.environ:
        return os.environ["PULUMI_CONFIG_PASSPHRASE"]
    path = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        return Path(path).read_text().strip()
    raise SecretsError(_PASSPHRASE_MISSING)


def kms_key_id(provider: str) -> str:
    """The key an ``awskms://`` secrets provider URL names (an alias, id or ARN)."""
    rest = provider.removeprefix("awskms://")
    return rest.split("?", 1)[0]


def stack_crypter(
    root: Path, stack: str, kms: Callable[[], Any] | None = None
) -> Callable[[], Crypter] | None:
    """The stack's crypter, derived only when first needed (the passphrase's key takes ~1 s), or
    None when its stack file names no secrets provider. ``kms`` gives a KMS client (the
    emulator's) for an ``awskms://`` provider."""
    path = root / f"Pulumi.{stack}.yaml"
    settings = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    provider = settings.get("secretsprovider") or ""
    made: list[Crypter] = []

    def crypter() -> Crypter:
        if made:
            return made[0]
        if settings.get("encryptionsalt"):
            made.append(passphrase_crypter(read_passphrase(), settings["encryptionsalt"]))
        elif provider.startswith("awskms://") and settings.get("encryptedkey"):
            if kms is None:
                raise SecretsError(f"{path.name}: secretsprovider {provider} needs the emulator's KMS")
            blob = base64.b64decode(settings["encryptedkey"])
            made.append(Crypter(kms().decrypt(CiphertextBlob=blob, KeyId=kms_key_id(provider))["Plaintext"]))
        else:
            raise SecretsError(
                f"{path.name}: no secrets provider (encryptionsalt, or secretsprovider and encryptedkey)"
            )
        return made[0]

    has_provider = settings.get("encryptionsalt") or (
        provider.startswith("awskms://") and settings.get("encryptedkey")
    )
    return crypter if has_provider else None


# -- secret values in the program's inputs and outputs -------------------------------------------
def is_wrapped(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_special_sig_key) == _special_secret_sig


def wrap(value: Any) -> dict[str, Any]:
    return {_special_sig_key: _special_secret_sig, "value": value}


Path_ = tuple[Any, ...]


def unwrap(value: Any, path: Path_ = ()) -> tuple[Any, set[Path_]]:
    """``value`` without the SDK's secret wrappers, and the paths where they were."""
    if is_wrapped(value) and "value" in value:
        inner, _ = unwrap(value["value"], path)
        return inner, {path}
    paths: set[Path_] = set()
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], found = unwrap(item, (*path, key))
            paths |= found
        return out, paths
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            plain, found = unwrap(item, (*path, i))
            items.append(plain)
            paths |= found
        return items, paths
    return value, paths


def _get(value: Any, path: Path_) -> Any:
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _replace(value: Any, path: Path_, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _replace(value[head], rest, new)}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return value


def _canonical(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


class SecretKeeper:
    """Keeps a stack's secret values out of its state, comparably across deploys."""

    def __init__(self, crypter: Callable[[], Crypter] | None = None):
        self._crypter = crypter

    def seal_value(self, value: Any, old: Any = None) -> dict[str, Any]:
        """The state's form of a secret: the old record when it holds the same value (so an
        unchanged secret shows no diff), else a new ciphertext or salted digest."""
        if is_wrapped(old) and self.matches(old, value):
            return old
        text = _canonical(value)
        if self._crypter is not None:
            return {_special_sig_key: _special_secret_sig, "ciphertext": self._crypter().encrypt(text)}
        salt = _random.token_hex(16)
        return {_special_sig_key: _special_secret_sig, "salt": salt, "sha256": _digest(salt, text)}

    def matches(self, sealed: dict[str, Any], value: Any) -> bool:
        text = _canonical(value)
        if "ciphertext" in sealed and self._crypter is not None:
            try:
                return hmac.compare_digest(self._crypter().decrypt(sealed["ciphertext"]), text)
            except SecretsError:
                return False
        if "sha256" in sealed:
            return hmac.compare_digest(sealed["sha256"], _digest(sealed["salt"], text))
        return False

    def reveal(self, value: Any) -> Any:
        """A state value with what can be decrypted decrypted (None where only a digest is kept)."""
        import json

        if is_wrapped(value):
            if "ciphertext" in value and self._crypter is not None:
                return json.loads(self._crypter().decrypt(value["ciphertext"]))
            return None
        if isinstance(value, dict):
            return {k: self.reveal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.reveal(v) for v in value]
        return value

    def recorded_outputs(self, old_outputs: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """An unchanged resource's outputs for the program: the recorded ones over its inputs, as
        at its create, except where the record is sealed and the program's own input is clear."""
        out = dict(inputs)
        for key, value in old_outputs.items():
            if key in inputs and _contains_sealed(value):
                continue
            out[key] = self.reveal(value)
        return out

    def seal(self, value: Any, paths: set[Path_], old: Any = None) -> Any:
        """``value`` with each secret path sealed (shortest paths first: a sealed whole holds its parts)."""
        for path in sorted(paths, key=len):
            current = _get(value, path)
            if current is None or is_wrapped(current):
                continue
            value = _replace(value, path, self.seal_value(current, _get(old, path)))
        return value

    @staticmethod
    def wrap(value: Any, paths: set[Path_]) -> Any:
        """``value`` with each secret path wrapped as the SDK marks a secret (for the program)."""
        for path in sorted(paths, key=len):
            current = _get(value, path)
            if current is not None and not is_wrapped(current):
                value = _replace(value, path, wrap(current))
        return value

    def split(self, raw: dict[str, Any], old_inputs: dict[str, Any] | None) -> tuple[dict, dict, set[Path_]]:
        """A resource's inputs as the AWS requests need them (clear), as the state records them
        (sealed) and the secret paths."""
        clear, paths = unwrap(raw)
        return clear, self.seal(clear, paths, old_inputs), paths

    def config(self, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Stack config with each ``secure:`` value decrypted, and the keys that were secure."""
        plain, secure = {}, []
        for key, value in config.items():
            if isinstance(value, dict) and set(value) == {"secure"}:
                if self._crypter is None:
                    raise SecretsError(
                        f"{key}: a secure value, but the stack file has no secrets provider "
                        "(encryptionsalt, or secretsprovider and encryptedkey)"
                    )
                try:
                    plain[key] = self._crypter().decrypt(value["secure"])
                except SecretsError as exc:
                    raise SecretsError(f"{key}: {exc}") from None
                secure.append(key)
            else:
                plain[key] = value
        return plain, secure


def _contains_sealed(value: Any) -> bool:
    if is_wrapped(value):
        return True
    if isinstance(value, dict):
        return any(_contains_sealed(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_sealed(v) for v in value)
    return False


def _digest(salt: str, text: str) -> str:
    return hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()


def display(value: Any) -> Any:
    """What may be printed: every secret shown as ``[secret]``."""
    if is_wrapped(value):
        return MASK
    if isinstance(value, dict):
        return {k: display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [display(v) for v in value]
    return value


def secret_exports(exports: dict[str, Any]):
    """An Output of the names of the stack exports that are secret."""
    import pulumi

    async def names() -> list[str]:
        found = []
        for key, value in exports.items():
            if isinstance(value, pulumi.Output) and await value.is_secret():
                found.append(key)
        return found

    return pulumi.Output.from_input(asyncio.ensure_future(names()))
