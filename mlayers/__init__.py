"""mlayers."""
