"""The local cloud: the Pulumi program deployed, resource by resource, into an AWS emulator.

It is the rehearsal of ``pulumi up``, not part of what it deploys: it sits on the top floor beside
``mlops`` and imports ``infra``, ``pipelines`` and ``model_code``; nothing below imports it.

The one program (infra/__main__.py) runs three ways: on AWS (``pulumi up``), under the unit
tests' mocks (tests/infra/harness.py) and here, where the same mocks are bridged into moto
so every resource is really created, read back, updated, replaced and deleted::

    Pulumi.<stack>.yaml ─► engine.Engine ── runs infra/__main__.py under set_mocks ──┐
      (+ --set k=v)          │  twice: a dry preview (every request checked, none     │
                             │  sent), then the deploy (state checkpointed per step)  │
                             │   new_resource(type, name, inputs)   call(data source) │
                             ▼                                                        │
                  state.decide(recorded inputs and read-back values, new inputs)      │
                  create | same | update | replace | (delete, after the program)      │
                             │                                                        │
                             ▼                                                        │
                  translations/<service>.py ── provider inputs ─► AWS requests        │
                             │   (shapes from botocore, strict checks, references)    │
                             ▼                                                        │
                  emulator: moto's ThreadedMotoServer on 127.0.0.1 + extensions ◄──────┘
                             │
                             ▼
                  .state/<stack>.json: per resource URN, type, id, inputs, outputs;
                  the stack outputs (as `pulumi stack output --json` prints them) and
                  the emulator's instance id (a state of another emulator is refused)

Modules: ``engine`` (the run, the mocks, the plan), ``state`` (state file, diff and the
operations), ``clients`` (strict, counted AWS clients), ``translations`` (one module per AWS
service), ``emulator`` (the server and what moto lacks at deploy time), ``behaviours`` (what
moto lacks at run time: executions, endpoints, rollouts, alarms, events, schedules, the
feature store runtime, MLflow; see its docstring), ``gitlab_trigger`` (GitLab's side of a
recorded approval call: the promotion pipeline's variables and deploy jobs), ``cli`` (``mlops
local deploy``), ``options`` (the resource options refused by name), ``secrets`` (``secure:``
config and sealed secrets), ``policy`` (the policy pack before any write) and ``pulumi_cli``
(``localcloud/bin/pulumi``: the Pulumi CLI subset CI scripts call).
"""
