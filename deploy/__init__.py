"""deploy/: ship a bundle and the agent to boards (over SSH, or this machine) and bring results back."""
