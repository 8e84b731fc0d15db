"""firetape's application shell: CLI, configuration, runtimes and reports."""
__version__ = "0.1.0"
