"""The media types the model server reads and answers, on their own so that the Pulumi
program (infra/endpoint.py, the endpoint's data capture) can name them without importing
the server and its model libraries."""

JSON = "application/json"
CSV = "text/csv"
