"""What a board is and needs: preflight, runtime install, wheelhouse, profiles, budgets, fleets."""
