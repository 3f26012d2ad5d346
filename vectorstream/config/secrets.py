"""Secret references: librdkafka settings that hold secrets come from the environment or a
file (`env:NAME`, `file:PATH`), never inline, and are resolved only where a client is made.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

# librdkafka settings that hold secrets: never given inline, never logged.
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password",
                         "ssl.truststore.password", "sasl.oauthbearer.client.secret"})


class KafkaConfigError(ValueError):
    """A --kafka_config setting that cannot be used; the message says what to do."""


def check_secrets_by_reference(extra: Optional[Dict[str, str]]) -> None:
    """Secrets must come from the environment or a file, never from the command line."""
    for key, value in (extra or {}).items():
        if key in SECRET_KEYS and not str(value).startswith(("env:", "file:")):
            raise KafkaConfigError(
                f"--kafka_config {key} must not be given inline (it would show in the process "
                f"list and in logs): use {key}=env:VARIABLE or {key}=file:/path/to/secret")


def resolve_secrets(extra: Optional[Dict[str, str]]) -> Dict[str, str]:
    """Replaces env:NAME and file:PATH values by what they point at."""
    resolved = {}
    for key, value in (extra or {}).items():
        value = str(value)
        if value.startswith("env:"):
            name = value[4:]
            if name not in os.environ:
                raise KafkaConfigError(f"--kafka_config {key} names the environment variable "
                                       f"{name}, which is not set: export it first")
            value = os.environ[name]
        elif value.startswith("file:"):
            try:
                with open(value[5:], encoding="utf-8") as fh:
                    value = fh.read().strip()
            except OSError as exc:
                raise KafkaConfigError(f"--kafka_config {key}: cannot read {value[5:]} "
                                       f"({exc.strerror})") from None
        resolved[key] = value
    return resolved

