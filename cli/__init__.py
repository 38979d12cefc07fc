"""The `tflow` command-line interface (typer). Only the CLI lives here."""
