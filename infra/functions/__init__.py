"""Small Lambda functions the platform deploys; each module is packaged on its own.

A module here runs in the Lambda Python runtime with only the standard library and boto3,
so it imports nothing from the rest of the repository.
"""
