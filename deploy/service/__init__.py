"""The agent's service on a board: launching it, and the hand-over figure under load."""
