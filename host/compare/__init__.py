"""`make compare`: is B worse than A beyond the noise?"""
