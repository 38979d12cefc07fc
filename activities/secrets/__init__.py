"""Secrets on the worker, and what of the worker a task may see.

Workflow code renders `secret('NAME')` as a placeholder tagged with its run
(`temporal_flows.expressions.library.secret`); only on a worker, just before a task uses its command
lines, script, environment, input files or HTTP request, is the value put in its place
(`task.TaskSecrets`), read from the worker's `--secrets` file or directory, else from its environment
`SECRET_NAME` (base64, as Kestra OSS) (`store.SecretStore`). The values never travel back: every
resolved value, and every SECRET input value the request names (`masked`), is masked (`****`) in the
task's output lines, result and errors, and URL query strings are cut from error messages. A task's
process gets an allow-listed environment (`worker.task_environment`), never the worker's credentials.
"""
