"""Expressions: sandboxed Jinja2 read with Pebble syntax, Kestra's filter/function library and
dates, stored-value references, and the output extractors (JSON, JMESPath, text).

Runs in the workflow sandbox, on workers and in the CLI; imports only `model`.
"""
