"""The platform's security invariants as a Pulumi CrossGuard policy pack (``invariants``)."""
