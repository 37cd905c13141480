"""Who may ask the public API what: shopper tokens signed in the private zone, server-to-server API
keys with scopes. Between the features (the pseudonym) and serving (which verifies)."""
