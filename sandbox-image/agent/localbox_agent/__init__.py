"""The in-sandbox agent of localbox (see __main__.py)."""
