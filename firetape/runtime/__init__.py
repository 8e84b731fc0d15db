"""Runtimes move events between stages; they hold no trading logic.

`bus` is the embedded runtime (one process, no servers, a durable local event log);
`pipeline` is the composition root that builds the stages from the config.
"""
