"""Stand-ins for the world outside the agent (the model server), speaking real protocols."""
