"""The dataset-card templates and the citations of every source, shipped inside the package
so that ``wormflow publish`` works from an installed wheel (read with importlib.resources)."""
