"""The client side: what talks to a Temporal server from outside a workflow.

Connecting (the SDK's environment configuration), starting, following and reading runs, the
worker that serves them, the dev server and finding the `temporal` binary. Dependencies run one
way: `cli` → `client` → `temporal_flows` (language, interpreter) and `activities`; nothing in
`temporal_flows` or `activities` imports this package.
"""
