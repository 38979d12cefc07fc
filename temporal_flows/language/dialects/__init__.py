"""One normalizer per source style of flow, each producing the same typed model."""
