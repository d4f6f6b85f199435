"""The pipeline tests' emulator (moto's server on 127.0.0.1), for the console commands."""

from tests.pipelines.conftest import aws, moto_server  # noqa: F401  (fixtures)
