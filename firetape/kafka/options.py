"""The command-line options every Kafka-facing command shares, declared once.

Only click here: firetape.cli applies `range_options` to `firetape replay` at start-up,
and importing Kafka's clients (or asyncio) there would slow every command down.
"""
from __future__ import annotations

import click

prefix = click.option("--prefix", envvar="FIRETAPE_TOPIC_PREFIX", default=None,
                      help="Topic namespace prefix (FIRETAPE_TOPIC_PREFIX), e.g. 'test1.'.")
bootstrap = click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", default=None,
                         help="Kafka bootstrap servers (KAFKA_BOOTSTRAP); default: the local "
                              "broker.")
config = click.option("--config", "config_path", envvar="FIRETAPE_CONFIG",
                      type=click.Path(),
                      help="firetape TOML (FIRETAPE_CONFIG); default: built-in defaults.")

# A backtest over a range of a Kafka topic: `firetape replay --from-kafka` and its older
# spelling `firetape replay-kafka` take the same options.
_RANGE = [
    click.option("--start", default=None,
                 help="With --from-kafka: offset (every partition) or time; inclusive."),
    click.option("--end", default=None,
                 help="With --from-kafka: offset (every partition) or time; exclusive."),
    click.option("--into-kafka", "into_kafka", default=None, metavar="RUN",
                 help="With --from-kafka: also republish the range into namespace RUN."),
    click.option("--config", "config_path", envvar="FIRETAPE_CONFIG", type=click.Path(),
                 help="With --from-kafka: firetape TOML (FIRETAPE_CONFIG); default: built-in "
                      "defaults. (A replayed run uses its recorded config.)"),
    bootstrap,
    click.option("--runs", default="runs", show_default=True, type=click.Path(),
                 help="With --from-kafka: where the backtest's run directory is made."),
    click.option("--json", "json_path", type=click.Path(),
                 help="With --from-kafka: also write the result as JSON."),
]


def range_options(func):
    """Decorate `func` with the options of a backtest over a Kafka topic's range."""
    for option in reversed(_RANGE):
        func = option(func)
    return func
