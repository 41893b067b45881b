"""edgekit device agent: measures TFLite models on the board (stdlib + NumPy + one TFLite runtime).

Nothing here imports host/ or deploy/; the package is shipped as a single zipapp (agent.pyz).
"""
__version__ = "0.1.0"
