"""Serving: the request handlers and the model server of SageMaker's hosting contract."""
