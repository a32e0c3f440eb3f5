"""Developer tools, run from a checkout and never shipped: the local cloud and the mock Task Runner."""
