"""temporal-flows: the flow language and the interpreter workflow that runs it on Temporal."""

__version__ = "0.1.0"
