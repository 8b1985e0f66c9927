"""hw_sim."""
