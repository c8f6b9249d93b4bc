"""The JetStream stream and the state bucket a sink publishes into: checked at start, and
created or extended only when ``create_stream = true``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError, ServiceUnavailableError

from ._names import covers


class StreamProblem(Exception):
    """The stream or the bucket is not what the sink needs; the message says what to do."""


@dataclass(frozen=True)
class StreamPlan:
    name: str
    subject: str
    """What the sink publishes (``<prefix>.<host>.domain.*.*``)."""
    prefix: str
    replicas: int
    duplicate_window: float
    create: bool


NO_JETSTREAM = (
    "JetStream does not answer on this server (start nats-server with -js, or leave stream "
    "and state_bucket empty for core NATS)"
)


async def ensure_stream(js: JetStreamContext, plan: StreamPlan, log: logging.Logger) -> str:
    """Check the stream (create or extend it if allowed); returns a one-line description."""
    try:
        info = await js.stream_info(plan.name)
    except NotFoundError:
        if not plan.create:
            raise StreamProblem(
                f"stream {plan.name!r} does not exist: create it with subjects "
                f"'{plan.prefix}.>' (nats stream add) or set create_stream = true"
            ) from None
        await js.add_stream(
            StreamConfig(
                name=plan.name,
                subjects=[f"{plan.prefix}.>"],
                num_replicas=plan.replicas,
                duplicate_window=plan.duplicate_window,
                storage=StorageType.FILE,
            )
        )
        log.info("created stream %r for %s.> (%d replicas)", plan.name, plan.prefix, plan.replicas)
        return f"stream {plan.name} (created)"
    except (NoRespondersError, ServiceUnavailableError, NatsTimeoutError):
        raise StreamProblem(NO_JETSTREAM) from None
    config = info.config
    subjects = list(config.subjects or [])
    covered = any(covers(pattern, plan.subject) for pattern in subjects)
    if not covered and not plan.create:
        raise StreamProblem(
            f"stream {plan.name!r} (subjects: {', '.join(subjects) or 'none'}) does not cover "
            f"{plan.subject}: add '{plan.prefix}.>' to its subjects or set create_stream = true"
        )
    changes = []
    if not covered:
        config.subjects = [*subjects, f"{plan.prefix}.>"]
        changes.append(f"subjects + {plan.prefix}.>")
    if plan.create and config.num_replicas != plan.replicas:
        config.num_replicas = plan.replicas
        changes.append(f"replicas {plan.replicas}")
    if plan.create and (config.duplicate_window or 0) < plan.duplicate_window:
        config.duplicate_window = plan.duplicate_window
        changes.append(f"duplicate window {plan.duplicate_window:g} s")
    if changes:
        await js.update_stream(config)
        log.info("updated stream %r: %s", plan.name, ", ".join(changes))
    elif (config.duplicate_window or 0) < 60:
        log.warning(
            "stream %r keeps message ids for %.0f s only: events sent again after a longer "
            "outage may be stored twice (a duplicate_window of minutes is safer)",
            plan.name,
            config.duplicate_window or 0,
        )
    return f"stream {plan.name}"


async def ensure_bucket(js: JetStreamContext, bucket: str, replicas: int, create: bool) -> str:
    """Check the key-value bucket for domain states (create it if allowed)."""
    try:
        await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        if not create:
            raise StreamProblem(
                f"state bucket {bucket!r} does not exist: create it (nats kv add {bucket}), set "
                'create_stream = true, or state_bucket = "" for none'
            ) from None
        await js.create_key_value(bucket=bucket, history=1, replicas=replicas)
        return f"bucket {bucket} (created)"
    except (NoRespondersError, ServiceUnavailableError, NatsTimeoutError):
        raise StreamProblem(NO_JETSTREAM) from None
    return f"bucket {bucket}"
