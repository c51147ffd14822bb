"""What one check needs from the process it runs in, and nothing more.

    context = CheckContext(monitor=cfg.monitor, stream_url=cfg.twitch.stream_url,
                           chatting_id=cfg.categories.chatting, store=store, retainer=retainer,
                           metrics=metrics, cpu_slot=runtime.cpu_slot, notify_flag=runtime.notify_flag)
    result = check_stream(context, stream, classifier)

`monitor.cycle.Runtime` builds one for its checks (`Runtime.check_context`);
a test or a tool can build one from its own parts. It names the stages'
objects, not the runtime, so the imports run one way: daemon -> cycle ->
check -> stages.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from monitor.config import MonitorConfig
from monitor.metrics import Metrics
from monitor.retain import Retainer
from monitor.store import FlagEvent, Store


@dataclass(frozen=True)
class CheckContext:
    """The settings and long-lived parts one check uses."""

    monitor: MonitorConfig  # capture length and cap, verdict thresholds, confirmations
    stream_url: str  # twitch.stream_url: the URL streamlink is given, with {user_login}
    chatting_id: str  # categories.chatting
    store: Store  # records the check and applies the flag rules
    retainer: Retainer  # keeps the frames of agreeing and mismatching checks
    metrics: Metrics
    cpu_slot: Callable[[], AbstractContextManager[None]]  # one of the core-bounded slots for CPU work
    notify_flag: Callable[[FlagEvent | None], None]  # the webhook, for flags opened and closed
