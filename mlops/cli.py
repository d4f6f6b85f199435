"""``mlops``: the project's command line, one subcommand per capability.

Each subcommand lives in its own module as ``main(argv)``; this file only dispatches, and
imports a module when its command runs, so ``mlops --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate-data": (
        "model_code.contract.synthetic",
        "write seeded synthetic churn data, with planted drift if asked",
    ),
    "validate": ("model_code.contract.validate", "validate a CSV against the schema; quarantine bad rows"),
    "train": ("model_code.training.train", "train a model (SageMaker training contract)"),
    "evaluate": (
        "model_code.training.evaluate",
        "evaluate a model on held-out data against MinAuc and the champion",
    ),
    "serve": ("model_code.serving.serve", "serve a model over HTTP (SageMaker /ping and /invocations)"),
    "drift": ("model_code.monitoring.drift", "compare two datasets and report drift per feature"),
    "quality": (
        "model_code.monitoring.quality",
        "join captured predictions with ground truth and report quality",
    ),
    "experiments": ("model_code.training.experiments", "compare tracked training runs side by side"),
    "pipeline": (
        "pipelines.cli",
        "print a SageMaker pipeline definition, or run one with the local executor",
    ),
    "cost": ("mlops.cost", "estimate the monthly cost of a stack's always-on parts from its config"),
    "verify": ("mlops.verify", "check a deployed stack's live state against what it declared"),
    "promote": (
        "mlops.promote",
        "copy an approved model package into a later stack (--from ARN --stack NAME); print its ARN",
    ),
    "status": (
        "mlops.console.status",
        "show a deployed stack: endpoint, alarms, executions, models, drift",
    ),
    "dashboard": (
        "mlops.console.render_dashboard",
        "draw the stack's deployed CloudWatch dashboard to PNG and HTML",
    ),
    "local": (
        "localcloud.scenario.cli",
        "run the whole lifecycle on the local cloud (AWS emulator) and print a summary",
    ),
}


# "command subcommand" -> module with main(argv), where one subcommand lives elsewhere.
SUBCOMMANDS: dict[tuple[str, str], str] = {("local", "deploy"): "localcloud.cli"}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mlops <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += [
        "  local deploy  deploy a stack into the local cloud (AWS emulator): --stack NAME [--preview|--destroy]"
    ]
    lines += ["", "Run 'mlops <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"mlops: unknown command {command!r}; expected one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if rest and (command, rest[0]) in SUBCOMMANDS:
        return int(importlib.import_module(SUBCOMMANDS[command, rest[0]]).main(rest[1:]) or 0)
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
