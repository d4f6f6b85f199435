# syntax=docker/dockerfile:1
# The project image: one image for every SageMaker job the platform runs.
#   processing steps  ContainerEntrypoint ["python", "-m", "model_code.<module>", ...]
#   training          docker run IMAGE train   (docker/train: mlops train, SageMaker training contract)
#   serving           docker run IMAGE serve   (docker/serve: mlops serve on port 8080)
# There is deliberately no ENTRYPOINT: SageMaker passes `train` or `serve` as the command.

# Python 3.11 (pyproject's requires-python) on Debian 12, pinned by tag and by the digest of
# the tag's multi-architecture index, so every rebuild starts from the same bytes.
# To move to a newer base (e.g. a Python patch release or Debian security update):
#   docker buildx imagetools inspect python:3.11.<patch>-slim-bookworm
# copy the "Digest:" it prints (the index digest) below with the new tag, rebuild, run the tests.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/program

# The runtime lock alone first, so this (slow) layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# CI passes the commit it builds (.ci/build: --build-arg CODE_VERSION=$CI_COMMIT_SHA): there is
# no git inside the image, and every tracked training run records the code version it ran.
# Declared after the dependency layer, which a new commit would otherwise rebuild every time.
ARG CODE_VERSION=unknown
ENV MLOPS_CODE_VERSION=$CODE_VERSION

# Then the project itself, with --no-deps: the lock already is the whole environment, and
# pip check fails the build if the project's declared dependencies disagree with it.
# Only model_code/ goes in: it is all a container runs (processing steps, train, serve) and it
# imports nothing above it. The operator's `mlops` command (package mlops/) is not in the image,
# so the console script pip writes for it is removed rather than left pointing at nothing.
COPY pyproject.toml README.md ./
COPY model_code/ model_code/
RUN pip install --no-cache-dir --no-deps . && rm /usr/local/bin/mlops && pip check

COPY --chmod=0755 docker/train docker/serve /usr/local/bin/

# No USER: every container of this image runs as root, SageMaker's default, on purpose.
# SageMaker mounts its own volumes over /opt/ml (the channels, /opt/ml/model, /opt/ml/output,
# /opt/ml/processing/...) when the job starts, so whatever this image chowns there is hidden
# by root-owned mounts: a non-root job cannot write its model, its outputs or its failure
# reason, and fails with no reason recorded. The SageMaker SDK works around exactly this for
# non-root images with chmod on the mounts at job start (aws/sagemaker-python-sdk#4325,
# #4764). Serving stays root too: SageMaker copies the model into /opt/ml/model as root and
# documents inference containers as running as root (aws/sagemaker-inference-toolkit#72);
# dropping to a non-root user could not be shown safe for real-time and serverless endpoints.
# What limits a job is its IAM role, network isolation and the KMS keys, not the uid.

# SageMaker sends endpoint traffic to port 8080.
EXPOSE 8080
