"""The feed as an agent (`firetape agent feed`): publishes one file, configured through the
environment as containers are, then stays up idle so its container counts as healthy."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from connectors.files import load_bars
from firetape.config import load_config
from firetape.kafka.publish import backtest_run_id, publish_bars
from firetape.kafka.settings import AgentSettings, SettingsError

log = logging.getLogger(__name__)


def parse_speed(text: str) -> float | None:
    """'max' -> None; '60x' or '60' -> 60.0 (event time 60 times faster than wall time)."""
    text = text.strip().lower()
    if text == "max":
        return None
    try:
        value = float(text.removesuffix("x"))
    except ValueError:
        raise SettingsError(f"speed {text!r}: use max or a factor such as 60x") from None
    if value <= 0:
        raise SettingsError(f"speed {text!r}: the factor must be positive")
    return value


async def publish_configured_file(settings: AgentSettings, env: Mapping[str, str]) -> None:
    """Publish FIRETAPE_FEED_DATA at FIRETAPE_FEED_SPEED (default max); nothing if unset."""
    path = env.get("FIRETAPE_FEED_DATA")
    if not path:
        log.warning("feed: FIRETAPE_FEED_DATA is not set, nothing to publish")
        return
    speed = parse_speed(env.get("FIRETAPE_FEED_SPEED", "max"))
    config = load_config(settings.config_path)
    frame = await asyncio.to_thread(load_bars, [path])
    run_id = settings.run_id or backtest_run_id(config, frame)
    result = await publish_bars(settings, frame, run_id, speed=speed)
    log.warning("feed: published %d bars (%d times) of %s as run %s in %.1f s",
                result.bars, result.times, path, run_id, result.seconds)
