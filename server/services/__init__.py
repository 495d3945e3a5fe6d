"""The domain: what containers (and their files) are and may do."""
