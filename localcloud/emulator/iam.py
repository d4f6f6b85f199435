"""IAM requests in parallel, as a deploy makes them.

moto looks a role up by iterating over the live dictionary of roles, so a ``GetRole`` while
another request creates a role fails now and then with "dictionary changed size during
iteration" (a 500; the bootstrap's five roles, created at once, hit it). Lookups iterate over
a snapshot instead.
"""

from __future__ import annotations

from moto.iam import models as iam_models


def install() -> None:
    iam_models.IAMBackend.get_roles = lambda self: list(self.roles.values())
