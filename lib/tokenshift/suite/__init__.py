"""The suite around the analyses: profiles and the pairs and studies they define, the notebook runner, the
findings file, the figure style, and the ``tokenshift`` command."""
