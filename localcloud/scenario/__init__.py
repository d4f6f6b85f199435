"""``mlops local``: the whole MLOps lifecycle on the local cloud, driven only through AWS APIs.

::

    emulator (free port | --port) ─► deploy --stack (no model) ─► upload CSV to raw/<schema>/
      ─► S3 event ─► ingestion pipeline (quarantine in S3, accepted rows to the feature store)
      ─► training (TriggerReason=manual) ─► approve ─► deploy with modelPackageArn (endpoint)
      ─► phase 1: held-out traffic, monitoring run, no drift alarm
      ─► phase 2: drifted traffic, monitoring run, drift alarm ─► EventBridge ─► training
         (TriggerReason=drift) ─► approve if registered ─► deploy: the stack's rollout strategy
      ─► ground truth fed back, quality published ─► summary (--json), --serve

``data`` prepares the input (schema, split, planted drift); ``run`` drives the steps, each
outcome read back from the emulator through boto3; ``cli`` is the command.
"""
