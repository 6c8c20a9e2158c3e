"""Node configuration and identity (no network): kbnode.json, RSA keys, node id."""
