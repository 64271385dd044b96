"""Tables of the phone channel (filled in as it grows)."""
