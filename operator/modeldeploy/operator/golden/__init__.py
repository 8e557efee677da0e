"""Sending golden requests to a revision's Service and judging the answers (the operator's I/O)."""
