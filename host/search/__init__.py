"""`make search`: the most accurate INT8 model within a board's budgets, found by measuring."""
