"""Pipeline stages as pure handlers: (state, event) -> new events, with no I/O and no wall
clock. The runtimes (`firetape.runtime`) only move events between them."""
