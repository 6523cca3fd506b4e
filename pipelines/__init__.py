"""What happens to a fetched document: extract -> match -> sinks -> alerts."""
