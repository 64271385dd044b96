"""One module per dashboard screen, each with its own ``router`` and ``templates/<screen>/``."""
