"""Adapters: implementations of the ports on concrete technologies."""
