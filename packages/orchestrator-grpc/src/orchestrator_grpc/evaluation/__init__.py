"""A harness that measures what deliberation is worth on a code benchmark."""
