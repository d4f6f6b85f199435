"""Only what runs inside SageMaker's containers, one folder per lifecycle stage.

The image (Dockerfile) holds this package alone: processing steps run
``python -m model_code.<stage>.<module>``, training and serving run ``model_code.entrypoints``.
It is the bottom floor: nothing here imports ``pipelines``, ``infra``, ``localcloud`` or ``mlops``.
"""
