#!/bin/sh
# Register temporal-flows' custom search attributes on a Temporal server; safe to run again.
#
# Usage: register-search-attributes.sh NAME=TYPE [NAME=TYPE ...]
#   (the pairs are temporal_flows.metadata.SEARCH_ATTRIBUTES; docker-compose.yml passes them)
# Environment:
#   TEMPORAL_ADDRESS    server to talk to (read by the `temporal` CLI itself)
#   TEMPORAL_NAMESPACE  namespace to register in (default: default)
#   REGISTER_TIMEOUT    seconds to keep retrying before giving up (default: 300)
#   REGISTER_INTERVAL   seconds between attempts (default: 3)
#
# The server may still be creating its schema and the `default` namespace when this starts, so
# every step is retried until the server answers. An attribute counts as registered when
# `search-attribute list` shows it with the requested type.
set -u

namespace="${TEMPORAL_NAMESPACE:-default}"
timeout="${REGISTER_TIMEOUT:-300}"
interval="${REGISTER_INTERVAL:-3}"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 NAME=TYPE [NAME=TYPE ...]" >&2
    exit 2
fi
for pair in "$@"; do
    case "$pair" in
        ?*=?*) ;;
        *) echo "$0: '$pair' is not NAME=TYPE (e.g. TflowFlowId=Keyword)" >&2; exit 2 ;;
    esac
done

deadline=$(($(date +%s) + timeout))
give_up_if_late() {
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$0: $1 after ${timeout}s; giving up (the container restarts on failure)" >&2
        exit 1
    fi
    sleep "$interval"
}

until temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; do
    echo "waiting for Temporal at ${TEMPORAL_ADDRESS:-<default address>} (namespace $namespace)..."
    give_up_if_late "Temporal did not answer"
done

# True when the namespace lists NAME with TYPE on one line. Works for the table output
# ("TflowFlowId  Keyword") and for enum spellings such as INDEXED_VALUE_TYPE_KEYWORD, while
# "Keyword" does not match "KeywordList"/"KEYWORD_LIST".
registered() {
    temporal operator search-attribute list --namespace "$namespace" 2>/dev/null \
        | grep -qiE "(^|[^A-Za-z0-9_])$1[^A-Za-z0-9_].*[^A-Za-z0-9]$2([^A-Za-z0-9_]|\$)"
}

for pair in "$@"; do
    name="${pair%%=*}"
    type="${pair#*=}"
    until registered "$name" "$type"; do
        temporal operator search-attribute create --namespace "$namespace" --name "$name" --type "$type" \
            && registered "$name" "$type" && break
        give_up_if_late "could not register search attribute $name ($type)"
    done
    echo "search attribute $name ($type) is registered in namespace $namespace"
done
