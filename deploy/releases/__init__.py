"""Releases: ship a bundle and the agent, switch, hand over, roll out, roll back."""
