"""Format readers, one module per format family."""
